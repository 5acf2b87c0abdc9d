"""Who is calling and for which tenant: the principal the tenant middleware turns into context.

Two ways in: a bearer token (verified in accounts.bearer, tenant from its claim) or a browser
session (tenant kept in the session by sign-in, or the user's home tenant). Both end in
enter_tenant(), which re-checks tenant status and membership on every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from accounts.models import Membership, User
from tenants.acting import acting_as_of, is_admin_request
from tenants.context import tenant_context
from tenants.models import Tenant

SESSION_TENANT_KEY = "ameide_tenant_id"
# Signing in and out must work for anyone, including a session whose membership was just
# removed, so these pages run without entering a tenant (they read no tenant data).
TENANTLESS_PATH_PREFIXES = ("/accounts/", "/oidc/", "/dev-issuer/")


class PrincipalRejected(Exception):
    """The caller is authenticated but may not enter the tenant (403), or is not (401)."""

    def __init__(
        self, *, status: int, code: str, detail: str, tenant: Tenant | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.tenant = tenant  # the tenant that was refused, when known (for the audit row)


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


def enter_tenant(*, user: User, tenant: Tenant | None, via: str) -> Principal:
    """Check that `user` may work in `tenant` now: it exists, is active, and they are a member."""
    if tenant is None:
        raise PrincipalRejected(status=403, code="tenant_unknown", detail="Unknown tenant.")
    if not tenant.is_active:
        raise PrincipalRejected(
            status=403, code="tenant_inactive", detail="Tenant is not active.", tenant=tenant
        )
    if not user.is_active:
        raise PrincipalRejected(
            status=403, code="user_inactive", detail="User is inactive.", tenant=tenant
        )
    with tenant_context(tenant):
        membership = Membership.objects.filter(user=user).first()
    if membership is None:
        raise PrincipalRejected(
            status=403,
            code="not_a_member",
            detail="You are not a member of this tenant.",
            tenant=tenant,
        )
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


def resolve_principal(request: HttpRequest) -> Principal | None:
    """The request's principal, or None for an anonymous (or tenant-less) caller."""
    # Imported here: accounts.bearer builds on this module's Principal and enter_tenant.
    from accounts.bearer import TokenRejected, bearer_principal
    from accounts.tokens import InvalidToken, parse_bearer

    if request.path.startswith(TENANTLESS_PATH_PREFIXES):
        return None
    try:
        token = parse_bearer(request.headers.get("Authorization"))
    except InvalidToken as exc:
        raise TokenRejected(exc.reason) from None
    if token is None:
        return session_principal(request)
    user = getattr(request, "user", None)
    session_user = user if user is not None and user.is_authenticated else None
    return bearer_principal(token=token, session_user=session_user)
