"""DRF permissions: a request reaches tenant data only as a member of the current tenant."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.principal import Principal


class IsTenantMember(BasePermission):
    message = "You are not signed in to a tenant."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, Principal) and request.auth.tenant == request.tenant
