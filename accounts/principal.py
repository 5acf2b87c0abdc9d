"""Who is calling and for which tenant: the principal the tenant middleware turns into context.

Two ways in: a bearer token (verified in accounts.bearer, tenant from its claim) or a browser
session (tenant kept in the session by sign-in, or the user's home tenant). Both end in
enter_tenant(), which re-checks tenant status and membership on every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from accounts.errors import PrincipalRejected
from accounts.models import Membership, User
from tenants.acting import acting_as_of, is_admin_request
from tenants.context import tenant_context
from tenants.models import Tenant

SESSION_TENANT_KEY = "ameide_tenant_id"
# Signing in and out must work for anyone, including a session whose membership was just
# removed, so these pages run without entering a tenant (they read no tenant data).
TENANTLESS_PATH_PREFIXES = ("/accounts/", "/oidc/", "/dev-issuer/")


@dataclass(frozen=True)
class Principal:
    user: User
    tenant: Tenant
    membership: Membership | None  # None only for a platform admin acting as the tenant
    via: str  # "session", "bearer" or "acting_as"
    acting_reason: str = ""

    @property
    def is_tenant_admin(self) -> bool:
        return self.membership is not None and self.membership.role == Membership.Role.ADMIN

    @property
    def acting_as(self) -> str:
        """The tenant a platform admin acts as (tenants.acting), for audit rows; else ""."""
        return self.tenant.slug if self.via == "acting_as" else ""


_NOT_LOOKED_UP = object()


def check_entry(
    *, tenant: Tenant | None, user: User | None = None, membership=_NOT_LOOKED_UP
) -> None:
    """The admission rule, in one place: raise the refusal (403) that applies, in this order:
    no tenant, an inactive tenant, an inactive user, no membership (when it was looked up)."""
    if tenant is None:
        raise PrincipalRejected(status=403, code="tenant_unknown", detail="Unknown tenant.")
    if not tenant.is_active:
        raise PrincipalRejected(
            status=403, code="tenant_inactive", detail="Tenant is not active.", tenant=tenant
        )
    if user is not None and not user.is_active:
        raise PrincipalRejected(
            status=403, code="user_inactive", detail="User is inactive.", tenant=tenant
        )
    if membership is None:
        raise PrincipalRejected(
            status=403,
            code="not_a_member",
            detail="You are not a member of this tenant.",
            tenant=tenant,
        )


def enter_tenant(*, user: User, tenant: Tenant | None, via: str) -> Principal:
    """Check that `user` may work in `tenant` now: it exists, is active, and they are a member."""
    check_entry(tenant=tenant, user=user)  # before the membership query
    with tenant_context(tenant):
        membership = Membership.objects.filter(user=user).first()
    check_entry(tenant=tenant, user=user, membership=membership)
    return Principal(user=user, tenant=tenant, membership=membership, via=via)


def session_principal(request: HttpRequest) -> Principal | None:
    """The principal of a signed-in browser session, re-validated on every request."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    if user.is_platform_admin and is_admin_request(request):
        return acting_principal(request)
    tenant_id = request.session.get(SESSION_TENANT_KEY) or user.home_tenant_id
    if tenant_id is None:
        return None  # a platform admin outside any tenant
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    return enter_tenant(user=user, tenant=tenant, via="session")


def acting_principal(request: HttpRequest) -> Principal | None:
    """A platform admin in the admin: the tenant they explicitly act as, or no tenant at all.

    Their own memberships and home tenant do not apply there, so every tenant they see in the
    admin was chosen with a reason and audited (tenants.acting).
    """
    acting = acting_as_of(request=request)
    if acting is None:
        return None
    return Principal(
        user=request.user,
        tenant=acting.tenant,
        membership=None,
        via="acting_as",
        acting_reason=acting.reason,
    )
