"""DRF authentication that uses the principal the tenant middleware already verified."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework.exceptions import PermissionDenied


class TenantPrincipalAuthentication(BaseAuthentication):
    """Returns (user, principal) for a request the middleware resolved; never verifies twice."""

    def authenticate(self, request):
        principal = getattr(request._request, "principal", None)
        if principal is None:
            return None
        if principal.via == "session":
            self._enforce_csrf(request)
        return principal.user, principal

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) with WWW-Authenticate to unauthenticated calls.
        return 'Bearer realm="api"'

    @staticmethod
    def _enforce_csrf(request) -> None:
        def dummy_get_response(request):  # pragma: no cover - never called by the check
            return None

        check = CSRFCheck(dummy_get_response)
        check.process_request(request)
        reason = check.process_view(request, None, (), {})
        if reason:
            raise PermissionDenied(f"CSRF Failed: {reason}")
