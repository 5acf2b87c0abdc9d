"""The identity app's subcommands of `manage.py tenants` (users, members, token): arguments and
output; the writes are accounts.services, the reads accounts.selectors. Added to the command
through settings.TENANCY_CLI_EXTENSIONS."""

from __future__ import annotations

import getpass
import sys

from django.conf import settings
from django.core.management.base import CommandError

from accounts import selectors as account_selectors
from accounts import services as account_services
from accounts.dev_issuer import mint_access_token
from accounts.errors import AccountInputError, AccountNotFound
from accounts.models import Membership, User
from tenants import selectors

ROLES = Membership.Role.values

USERS_HELP = """\
Local user accounts (global: one account may belong to several tenants). Users are never
deleted, since their rows span tenants: deactivate them. A new user belongs to no tenant until
`tenants members SLUG add USERNAME`, which also makes that tenant their home tenant (the
one a local-password sign-in enters) when they have none.
"""

MEMBERS_HELP = """\
Who belongs to tenant SLUG, and as what: `member`, or `admin` (the tenant's admin console
at /admin/). A removed member's sessions and tokens get 403 from their next request.
"""


def _user_dict(user: User) -> dict:
    return {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": user.is_active,
        "is_staff": user.is_staff,
        "is_superuser": user.is_superuser,
        "home_tenant": user.home_tenant.slug if user.home_tenant_id else None,
        "issuer": user.issuer,
        "subject": user.subject,
        "has_usable_password": user.has_usable_password(),
        "date_joined": user.date_joined.isoformat(),
        "last_login": user.last_login.isoformat() if user.last_login else None,
    }


def _member_dict(membership: Membership, *, slug: str) -> dict:
    return {
        "tenant": slug,
        "username": membership.user.username,
        "user_id": membership.user_id,
        "email": membership.user.email,
        "role": membership.role,
        "created_at": membership.created_at.isoformat(),
    }


class AccountSubcommands:
    """Mixed into the `tenants` Command: users, members and the development issuer's token."""

    input_errors = (AccountInputError, AccountNotFound)  # shown as one line by the command

    def add_parsers(self, sub) -> None:
        token = sub.add_parser(
            "token", help="Print a short-lived API token of the development issuer (DEBUG only)."
        )
        token.add_argument("slug")
        token.add_argument("--user", required=True, help="Subject and name in the token.")
        token.add_argument("--admin", action="store_true", help="Carry the tenant-admin role.")
        token.add_argument("--ttl", type=int, default=900, help="Lifetime in seconds (900).")
        users = sub.add_parser(
            "users",
            help="Local users: add, list, set-password, deactivate, activate.",
            description=USERS_HELP,
        )
        actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="Create a local user.")
        add.add_argument("username")
        add.add_argument("--email", default="")
        add.add_argument("--first-name", default="")
        add.add_argument("--last-name", default="")
        password = add.add_mutually_exclusive_group()
        password.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of stdin (default: ask on the terminal).",
        )
        password.add_argument(
            "--no-password",
            action="store_true",
            help="No usable password (the user signs in through an identity provider).",
        )
        add.add_argument("--json", action="store_true", help="Print the user as JSON.")
        listing = actions.add_parser("list", help="List users.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        set_password = actions.add_parser("set-password", help="Set a user's local password.")
        set_password.add_argument("username")
        set_password.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of stdin (default: ask on the terminal).",
        )
        set_password.add_argument("--json", action="store_true", help="Print the user as JSON.")
        for name, text in (("deactivate", "Deactivate"), ("activate", "Reactivate")):
            p = actions.add_parser(
                name, help=f"{text} a user (sessions and tokens count from the next request)."
            )
            p.add_argument("username")
            p.add_argument("--reason", default="", help="Why (kept in the audit log).")
            p.add_argument("--json", action="store_true", help="Print the user as JSON.")

        members = sub.add_parser(
            "members",
            help="A tenant's members and their roles: add, list, set-role, remove.",
            description=MEMBERS_HELP,
        )
        members.add_argument("slug")
        actions = members.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add", help="Make an existing user a member.")
        add.add_argument("username")
        add.add_argument(
            "--role", choices=ROLES, default="member", help="member (default) or admin."
        )
        add.add_argument("--json", action="store_true", help="Print the membership as JSON.")
        listing = actions.add_parser("list", help="List the members and their roles.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        set_role = actions.add_parser("set-role", help="Change a member's role.")
        set_role.add_argument("username")
        set_role.add_argument("--role", choices=ROLES, required=True)
        set_role.add_argument("--json", action="store_true", help="Print the membership as JSON.")
        remove = actions.add_parser("remove", help="Take a user out of the tenant.")
        remove.add_argument("username")
        remove.add_argument("--json", action="store_true", help="Print the removed membership.")

    # -- users -------------------------------------------------------------------------------

    def do_token(self, *, slug, user, admin=False, ttl=900, **_):
        if not settings.DEBUG:
            raise CommandError("tenants token is refused with DEBUG off (development issuer).")
        tenant = selectors.tenant_get(slug=slug)
        try:
            self.stdout.write(mint_access_token(tenant=tenant, username=user, admin=admin, ttl=ttl))
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def do_users(self, *, action, **options):
        getattr(self, "_users_" + action.replace("-", "_"))(**options)

    def _users_add(
        self,
        *,
        username,
        email="",
        first_name="",
        last_name="",
        password_stdin=False,
        no_password=False,
        json=False,
        **_,
    ):
        password = None if no_password else self._read_password(from_stdin=password_stdin)
        user = account_services.user_create(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            password=password,
        )
        suffix = " (no usable password)" if password is None else ""
        self._emit(_user_dict(user), as_json=json, text=f"created user {user.username}{suffix}")

    def _users_list(self, *, json=False, **_):
        users = [_user_dict(u) for u in account_selectors.user_list()]
        lines = [f"{'username':<24} {'active':<6} {'platform':<8} {'home':<16} email"]
        lines += [
            f"{u['username']:<24} {_yes(u['is_active']):<6} {_yes(u['is_superuser']):<8} "
            f"{u['home_tenant'] or '-':<16} {u['email']}"
            for u in users
        ]
        self._emit(users, as_json=json, text="\n".join(lines) if users else "(no users)")

    def _users_set_password(self, *, username, password_stdin=False, json=False, **_):
        user = account_selectors.user_get(username=username)
        password = self._read_password(from_stdin=password_stdin)
        account_services.user_set_password(user=user, password=password)
        self._emit(_user_dict(user), as_json=json, text=f"password of {user.username} set")

    def _users_deactivate(self, *, username, reason="", json=False, **_):
        user = account_selectors.user_get(username=username)
        account_services.user_set_active(user=user, active=False, reason=reason)
        self._emit(_user_dict(user), as_json=json, text=f"user {user.username} is inactive")

    def _users_activate(self, *, username, reason="", json=False, **_):
        user = account_selectors.user_get(username=username)
        account_services.user_set_active(user=user, active=True, reason=reason)
        self._emit(_user_dict(user), as_json=json, text=f"user {user.username} is active")

    def _read_password(self, *, from_stdin: bool) -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\r\n")
        if not sys.stdin.isatty():
            raise CommandError(
                "No terminal to ask for the password on: pass --password-stdin (or, for "
                "`users add`, --no-password)."
            )
        first = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != first:
            raise CommandError("The two passwords differ; nothing was written.")
        return first

    # -- members -----------------------------------------------------------------------------

    def do_members(self, *, slug, action, **options):
        tenant = selectors.tenant_get(slug=slug)
        getattr(self, "_members_" + action.replace("-", "_"))(tenant=tenant, **options)

    def _members_add(self, *, tenant, username, role="member", json=False, **_):
        user = account_selectors.user_get(username=username)
        membership = account_services.membership_add(tenant=tenant, user=user, role=role)
        text = f"{user.username} is now {role} of {tenant.slug}"
        if user.home_tenant_id == tenant.pk:
            text += " (their home tenant)"
        self._emit(_member_dict(membership, slug=tenant.slug), as_json=json, text=text)

    def _members_list(self, *, tenant, json=False, **_):
        members = [
            _member_dict(m, slug=tenant.slug)
            for m in account_selectors.membership_list(tenant=tenant)
        ]
        lines = [f"{'username':<24} {'role':<8} {'since':<10} email"]
        lines += [
            f"{m['username']:<24} {m['role']:<8} {m['created_at'][:10]:<10} {m['email']}"
            for m in members
        ]
        text = "\n".join(lines) if members else f"(no members in {tenant.slug})"
        self._emit(members, as_json=json, text=text)

    def _members_set_role(self, *, tenant, username, role, json=False, **_):
        user = account_selectors.user_get(username=username)
        membership = account_services.membership_set_role(tenant=tenant, user=user, role=role)
        text = f"{user.username} is {role} of {tenant.slug}"
        self._emit(_member_dict(membership, slug=tenant.slug), as_json=json, text=text)

    def _members_remove(self, *, tenant, username, json=False, **_):
        user = account_selectors.user_get(username=username)
        membership = account_selectors.membership_of(tenant=tenant, user=user)
        account_services.membership_remove(tenant=tenant, user=user)  # refuses a non-member
        data = {**_member_dict(membership, slug=tenant.slug), "removed": True}
        self._emit(data, as_json=json, text=f"{user.username} removed from {tenant.slug}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
