"""Writes about identities: first-login provisioning, local users, memberships, and the
tenant a browser session works in; each write leaves an audit row in its transaction."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from accounts.errors import AccountInputError, TenantSwitchRefused
from accounts.models import Membership, User
from accounts.selectors import membership_of
from tenants.audit import record_event
from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.services import SLUG_RE

logger = logging.getLogger(__name__)

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]+")
_USERNAME_BASE_LENGTH = 60


def user_provision(
    *,
    issuer: str,
    subject: str,
    tenant: Tenant,
    claims: Mapping[str, Any],
    is_admin: bool,
) -> User:
    """Create the account of an (issuer, subject) seen for the first time, and its membership.

    Accounts are keyed by (issuer, subject) only: an existing account with the same e-mail is
    never reused, because another provider (or another tenant's realm) vouches for that
    address. The membership is created only here, together with the account; afterwards
    memberships are managed in the admin and the CLI, so a member an admin removed stays
    removed even though their tokens keep naming the tenant. `tenant` must be active (the
    caller checked it); tenants are never created from a token.
    """
    if not tenant.is_active:
        raise ValueError("users are provisioned only into active tenants")
    role = Membership.Role.ADMIN if is_admin else Membership.Role.MEMBER
    first_name, last_name = _names(claims)
    user = User(
        username=_free_username(issuer=issuer, subject=subject, claims=claims),
        issuer=issuer,
        subject=subject,
        email=_claim_str(claims, "email", 254),
        first_name=first_name,
        last_name=last_name,
    )
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
            with tenant_context(tenant):
                Membership.objects.create(user=user, role=role)
                record_event(
                    action="user.provisioned",
                    actor=user.username,
                    tenant=tenant,
                    details={"issuer": issuer, "subject": subject, "role": role},
                )
    except IntegrityError:
        # A concurrent first request of the same person won the race: use their account.
        existing = User.objects.filter(issuer=issuer, subject=subject).first()
        if existing is None:
            raise
        return existing
    logger.info("provisioned %s from %s into tenant %s", user.username, issuer, tenant.slug)
    return user


def user_first_sign_in(*, user: User, tenant: Tenant, is_admin: bool) -> None:
    """The first sign-in of an account an import created: provisioned like a new account
    (a membership in the token's tenant), so that an archive naming someone's identity cannot
    lock them out of their own tenant. Afterwards, as for any account, memberships change only
    through the admin and the CLI."""
    role = Membership.Role.ADMIN if is_admin else Membership.Role.MEMBER
    with transaction.atomic():
        with tenant_context(tenant):
            _, created = Membership.objects.get_or_create(user=user, defaults={"role": role})
        User.objects.filter(pk=user.pk).update(awaiting_first_sign_in=False)
        user.awaiting_first_sign_in = False
        record_event(
            action="user.first_sign_in",
            actor=user.username,
            tenant=tenant,
            details={"role": role, "membership_created": created},
        )


def username_for(*, issuer: str, subject: str, claims: Mapping[str, Any], length: int = 10) -> str:
    """A readable, stable username: a name from the claims plus a digest of (issuer, subject).

    The digest keeps accounts of different providers apart even when they share a name, and
    stops a provider from claiming the username of a local account such as `admin`.
    """
    digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:length]
    base = ""
    for name in ("preferred_username", "nickname", "email"):
        value = _claim_str(claims, name, 254)
        if value:
            base = value.split("@")[0] if name == "email" else value
            break
    base = _USERNAME_UNSAFE.sub("-", base).strip("-.")[:_USERNAME_BASE_LENGTH] or "user"
    return f"{base}-{digest}"


def _free_username(*, issuer: str, subject: str, claims: Mapping[str, Any]) -> str:
    for length in (10, 16, 32, 64):
        candidate = username_for(issuer=issuer, subject=subject, claims=claims, length=length)
        if not User.objects.filter(username=candidate).exists():
            return candidate
    return candidate  # practically unreachable; the unique constraint has the final word


def _names(claims: Mapping[str, Any]) -> tuple[str, str]:
    given = _claim_str(claims, "given_name", 150)
    family = _claim_str(claims, "family_name", 150)
    if given or family:
        return given, family
    first, _, last = _claim_str(claims, "name", 301).partition(" ")
    return first[:150], last[:150]


def _claim_str(claims: Mapping[str, Any], name: str, limit: int) -> str:
    value = claims.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


# --- Local users (`manage.py tenants users`) --------------------------------------------------


def user_create(
    *,
    username: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    password: str | None,
) -> User:
    """Create a local account (no issuer); `password=None` leaves it without a usable one.

    Names are compared without case: `Alice` beside `alice` would sign in as two people.
    """
    username = _valid_field("username", username)
    taken = AccountInputError(f"A user named {username!r} already exists.")
    if User.objects.filter(username__iexact=username).exists():
        raise taken
    email = User.objects.normalize_email(_valid_email(email))
    user = User(
        username=username,
        email=email,
        first_name=_valid_field("first_name", first_name, required=False),
        last_name=_valid_field("last_name", last_name, required=False),
    )
    if password is None:
        user.set_unusable_password()
    else:
        user.set_password(_valid_password(password, user=user))
    try:
        with transaction.atomic():
            user.save()
            record_event(
                action="user.create",
                details={"username": username, "email": email, "password": password is not None},
            )
    except IntegrityError:  # created meanwhile by someone else
        raise taken from None
    return user


def user_set_password(*, user: User, password: str) -> User:
    with transaction.atomic():
        user.set_password(_valid_password(password, user=user))
        user.save(update_fields=["password"])
        record_event(action="user.password_set", details={"username": user.username})
    return user


def user_set_active(*, user: User, active: bool, reason: str = "") -> User:
    """Deactivate (or reactivate) an account: sessions and tokens stop at the next request.

    Users are never deleted here, because their rows span tenants (memberships, owners).
    """
    if user.is_active == active:
        state = "active" if active else "inactive"
        raise AccountInputError(f"User {user.username!r} is already {state}.")
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active"])
        record_event(
            action="user.activate" if active else "user.deactivate",
            reason=reason,
            details={"username": user.username},
        )
    return user


def _valid_field(name: str, value: str, *, required: bool = True) -> str:
    value = (value or "").strip()
    if not value and not required:
        return ""
    try:
        return User._meta.get_field(name).clean(value, None)
    except ValidationError as exc:
        raise AccountInputError(
            f"Invalid {name.replace('_', ' ')}: {' '.join(exc.messages)}"
        ) from None


def _valid_email(email: str) -> str:
    email = (email or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise AccountInputError(f"Invalid e-mail address {email!r}.") from None
    return email


def _valid_password(password: str, *, user: User) -> str:
    if not password:
        raise AccountInputError("The password is empty.")
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise AccountInputError("Password refused: " + " ".join(exc.messages)) from None
    return password


# --- Memberships (`manage.py tenants members`, the admin) ----------------------------------


def membership_add(*, tenant: Tenant, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    """Make `user` a member of `tenant` with `role`.

    Also makes `tenant` the user's home tenant (the one a local-password sign-in enters) when
    they have none, or when they no longer belong to it: otherwise a tenant admin created
    this way would sign in to no tenant and find the admin closed to them.
    """
    _check_writable(tenant)
    role = _valid_role(role)
    home_stale = user.home_tenant_id is None or (
        user.home_tenant_id != tenant.pk
        and membership_of(tenant=user.home_tenant, user=user) is None
    )
    try:
        with transaction.atomic():
            with tenant_context(tenant):
                membership = Membership.objects.create(user=user, role=role)
            if home_stale:
                user.home_tenant = tenant
                user.save(update_fields=["home_tenant"])
            record_event(
                action="membership.add",
                tenant=tenant,
                details={"username": user.username, "role": role, "home_tenant_set": home_stale},
            )
    except IntegrityError:
        raise AccountInputError(
            f"{user.username!r} is already a member of {tenant.slug!r} (use set-role)."
        ) from None
    return membership


def membership_set_role(*, tenant: Tenant, user: User, role: str) -> Membership:
    _check_writable(tenant)
    role = _valid_role(role)
    membership = _membership(tenant=tenant, user=user)
    if membership.role == role:
        return membership  # nothing changes, nothing to audit
    with transaction.atomic(), tenant_context(tenant):
        previous, membership.role = membership.role, role
        membership.save(update_fields=["role"])
        record_event(
            action="membership.set_role",
            tenant=tenant,
            details={"username": user.username, "from": previous, "to": role},
        )
    return membership


def membership_remove(*, tenant: Tenant, user: User) -> None:
    """Take `user` out of `tenant`: their sessions and tokens get 403 from the next request.

    The home tenant is kept on purpose: a session that still names this tenant is refused
    (and the refusal audited) rather than quietly entering nowhere.
    """
    _check_writable(tenant)
    membership = _membership(tenant=tenant, user=user)
    with transaction.atomic(), tenant_context(tenant):
        membership.delete()
        record_event(
            action="membership.remove",
            tenant=tenant,
            details={"username": user.username, "role": membership.role},
        )


def _membership(*, tenant: Tenant, user: User) -> Membership:
    membership = membership_of(tenant=tenant, user=user)
    if membership is None:
        raise AccountInputError(f"{user.username!r} is not a member of {tenant.slug!r}.")
    return membership


def _valid_role(role: str) -> str:
    if role not in Membership.Role.values:
        roles = ", ".join(Membership.Role.values)
        raise AccountInputError(f"Unknown role {role!r}: use one of {roles}.")
    return role


def _check_writable(tenant: Tenant) -> None:
    if tenant.status == Tenant.Status.DELETED:
        raise AccountInputError(
            f"Tenant {tenant.slug!r} is deleted; `tenants activate {tenant.slug}` first."
        )


# --- The tenant of a browser session (accounts.views.TenantSwitchView) ----------------------


def session_tenant_switch(
    *, user: User, slug: str, current_tenant_id: int | None, provider_session: bool
) -> Tenant:
    """Check that `user` may make the tenant `slug` their browser session's, and audit it.

    The caller stores the returned tenant in the session (accounts.principal reads it there
    and checks the membership again on every request). A refusal is audited too and raises
    TenantSwitchRefused; an unknown tenant and one the user is not a member of are refused
    with the same words, so the form tells nobody which tenants exist.
    """
    tenant = Tenant.objects.filter(slug=slug).first() if SLUG_RE.match(slug or "") else None
    try:
        _check_switch(user=user, slug=slug, tenant=tenant, provider_session=provider_session)
    except TenantSwitchRefused as exc:
        record_event(
            action="tenant.switch_refused",
            tenant=tenant,
            details={"slug": slug if SLUG_RE.match(slug or "") else "(invalid)", "code": exc.code},
        )
        raise
    record_event(
        action="tenant.switch", tenant=tenant, details={"from_tenant_id": current_tenant_id}
    )
    return tenant


def _check_switch(*, user: User, slug: str, tenant: Tenant | None, provider_session: bool) -> None:
    if provider_session:
        # The identity provider vouched for one tenant at sign-in; entering another needs
        # its word too (a new sign-in), not only a membership.
        raise TenantSwitchRefused(
            "Your identity provider chose this session's tenant: sign in again to work in "
            "another one.",
            code="provider_session",
        )
    if tenant is None or membership_of(tenant=tenant, user=user) is None:
        raise TenantSwitchRefused(
            f"You are not a member of a tenant named {slug!r}.", code="not_a_member"
        )
    if not tenant.is_active:
        raise TenantSwitchRefused(f"Tenant {slug!r} is {tenant.status}.", code="tenant_inactive")
