"""DRF permissions: a request reaches tenant data only as a member of the current tenant."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission


class IsTenantMember(BasePermission):
    message = "You are not signed in to a tenant."

    def has_permission(self, request, view) -> bool:
        # The principal the tenant middleware admitted this request with (and set the context
        # from) is the one DRF authenticated, and it is of the request's tenant.
        principal = getattr(request, "principal", None)
        return (
            principal is not None
            and request.auth is principal
            and principal.tenant == getattr(request, "tenant", None)
        )


class IsTenantAdmin(BasePermission):
    """The request's principal is an admin of its tenant (or a platform admin acting as it)."""

    def has_permission(self, request, view) -> bool:
        principal = getattr(request, "principal", None)
        if principal is not None and (principal.is_tenant_admin or principal.membership is None):
            return True
        raise PermissionDenied("Only a tenant admin reads the audit log.", "role_admin_required")
