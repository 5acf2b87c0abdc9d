"""DRF permissions: a request reaches tenant data only as a member of the current tenant."""

from __future__ import annotations

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
