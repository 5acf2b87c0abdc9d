"""Who is calling and for which tenant: the principal the tenant middleware turns into context.

Issue-2 scope: a session-authenticated user and the tenant kept in their session (or their
home tenant). Bearer tokens are verified in accounts.bearer and produce the same Principal.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.models import Tenant

SESSION_TENANT_KEY = "ameide_tenant_id"


class PrincipalRejected(Exception):
    """The caller is authenticated but may not enter the tenant (403), or is not (401)."""

    def __init__(self, *, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    user: User
    tenant: Tenant
    membership: Membership
    via: str  # "session" or "bearer"

    @property
    def is_tenant_admin(self) -> bool:
        return self.membership.role == Membership.Role.ADMIN


def enter_tenant(*, user: User, tenant: Tenant | None, via: str) -> Principal:
    """Check that `user` may work in `tenant` now: it exists, is active, and they are a member."""
    if tenant is None:
        raise PrincipalRejected(status=403, code="tenant_unknown", detail="Unknown tenant.")
    if not tenant.is_active:
        raise PrincipalRejected(status=403, code="tenant_inactive", detail="Tenant is not active.")
    if not user.is_active:
        raise PrincipalRejected(status=403, code="user_inactive", detail="User is inactive.")
    with tenant_context(tenant):
        membership = Membership.objects.filter(user=user).first()
    if membership is None:
        raise PrincipalRejected(
            status=403, code="not_a_member", detail="You are not a member of this tenant."
        )
    return Principal(user=user, tenant=tenant, membership=membership, via=via)


def session_principal(request: HttpRequest) -> Principal | None:
    """The principal of a signed-in browser session, re-validated on every request."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    tenant_id = request.session.get(SESSION_TENANT_KEY) or user.home_tenant_id
    if tenant_id is None:
        return None  # a platform admin outside any tenant
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    return enter_tenant(user=user, tenant=tenant, via="session")


def resolve_principal(request: HttpRequest) -> Principal | None:
    """The request's principal, or None for an anonymous (or tenant-less) caller."""
    return session_principal(request)
