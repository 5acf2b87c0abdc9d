"""Where the tenant is set for a request: principal -> context, reset in `finally`."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string

from tenants.audit import acting
from tenants.context import no_tenant, tenant_context

PRINCIPAL_RESOLVER = "accounts.principal.resolve_principal"


def _rejection(exc) -> HttpResponse:
    response = JsonResponse({"detail": exc.detail, "code": exc.code}, status=exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = getattr(exc, "www_authenticate", 'Bearer realm="api"')
    return response


class TenantMiddleware:
    """Sets the tenant context for the view from the authenticated principal.

    Every request starts with no tenant (a reused gthread worker thread cannot leak the
    previous request's tenant), and the context is reset whatever the view does. Streaming
    bodies are produced after this returns, so they are wrapped to run in the same tenant.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.resolve = import_string(PRINCIPAL_RESOLVER)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from accounts.principal import PrincipalRejected

        request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        with no_tenant():
            try:
                principal = self.resolve(request)
            except PrincipalRejected as exc:
                return _rejection(exc)
            request.principal = principal
            request.tenant = principal.tenant if principal else None
            user_name = getattr(getattr(request, "user", None), "username", "") or ""
            if principal is None:
                with acting(name=user_name, request_id=request_id):
                    return self.get_response(request)
            with acting(name=principal.user.username, request_id=request_id):
                with tenant_context(principal.tenant):
                    response = self.get_response(request)
                if response.streaming:
                    response.streaming_content = _in_tenant(
                        response.streaming_content, principal.tenant
                    )
                return response


def _in_tenant(iterable, tenant):
    """Yield a streaming body's chunks with the tenant set while each is produced."""
    iterator = iter(iterable)
    while True:
        with tenant_context(tenant):
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk
