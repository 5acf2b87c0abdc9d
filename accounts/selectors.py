"""Reads about identities: users (global) and one tenant's memberships (read in its context)."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.errors import AccountNotFound
from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.models import Tenant


def user_list() -> QuerySet[User]:
    return User.objects.select_related("home_tenant").order_by("username")


def user_get(*, username: str) -> User:
    user = User.objects.select_related("home_tenant").filter(username=username).first()
    if user is None:
        raise AccountNotFound(f"No user named {username!r}.")
    return user


def membership_list(*, tenant: Tenant) -> list[Membership]:
    """The tenant's memberships with their users, by username (evaluated inside the tenant)."""
    with tenant_context(tenant):
        return list(Membership.objects.select_related("user").order_by("user__username"))


def membership_of(*, tenant: Tenant, user: User) -> Membership | None:
    """`user`'s membership in `tenant`, or None (read inside the tenant: RLS admits only it)."""
    with tenant_context(tenant):
        return Membership.objects.filter(user=user).first()


def session_tenant(*, user: User, session_tenant_id: int | None) -> Tenant | None:
    """The tenant a browser session names: chosen at sign-in or since, else the home tenant.

    Only what the session names; whether the user may enter it is checked on every request
    (accounts.principal.enter_tenant).
    """
    tenant_id = session_tenant_id or user.home_tenant_id
    return Tenant.objects.filter(pk=tenant_id).first() if tenant_id else None
