"""Where the tenant is set for a request: principal -> context, reset in `finally`."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.module_loading import import_string

from tenants.acting import is_admin_request
from tenants.actor import acting
from tenants.audit import record_event
from tenants.context import no_tenant, tenant_context
from tenants.exceptions import EntryRefused, PlacementUnavailable
from tenants.placement.router import respond_in_placement

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def _database_unavailable() -> HttpResponse:
    """The same 503 as ameide.api_errors, for failures before DRF runs (THREATS 29)."""
    response = JsonResponse(
        {"detail": "The database is unavailable; try again shortly.", "code": "unavailable"},
        status=503,
    )
    response["Retry-After"] = "5"
    return response


def _record_refusal(request: HttpRequest, exc, *, request_id: str) -> None:
    """Audit a refused entry into a tenant (403): who tried, which tenant, why.

    Its own short transaction: the refused request writes nothing else.
    """
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else ""
    with acting(name=name, request_id=request_id), transaction.atomic():
        record_event(
            action="refused.cross_tenant",
            tenant=getattr(exc, "tenant", None),
            details={"code": exc.code, "method": request.method, "path": request.path[:200]},
        )


def _rejection(exc, request: HttpRequest | None = None) -> HttpResponse:
    if request is not None and exc.status == 403 and is_admin_request(request):
        # Admin pages are read by people: the same refusal, as a page with a way to sign out.
        body = render_to_string("admin/tenant_refused.html", {"detail": exc.detail}, request)
        return HttpResponse(body, status=403)
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
        # Who is calling is the identity app's business; the core knows it by a setting.
        self.resolve = import_string(settings.TENANCY_PRINCIPAL_RESOLVER)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        with no_tenant():
            try:
                principal = self.resolve(request)
            except EntryRefused as exc:
                if exc.status == 403:
                    try:
                        _record_refusal(request, exc, request_id=request_id)
                    except DATABASE_UNAVAILABLE:
                        return _database_unavailable()  # still refused, never let in
                return _rejection(exc, request)
            except DATABASE_UNAVAILABLE:
                return _database_unavailable()  # the principal lookup reads the database
            request.principal = principal
            request.tenant = principal.tenant if principal else None
            user_name = getattr(getattr(request, "user", None), "username", "") or ""
            if principal is None:
                with acting(name=user_name, request_id=request_id):
                    return self.get_response(request)
            # A platform admin acting as the tenant (tenants.acting) is named on every audit row.
            acting_as = getattr(principal, "acting_as", "")
            with acting(name=principal.user.username, acting_as=acting_as, request_id=request_id):
                with tenant_context(principal.tenant):
                    try:
                        # A dedicated database's request transaction (tenants.placement).
                        response = respond_in_placement(
                            principal.tenant, lambda: self.get_response(request)
                        )
                    except (PlacementUnavailable, *DATABASE_UNAVAILABLE):
                        # The tenant's database unknown, or its transaction could not begin or
                        # commit: never the view's answer as if its work were done.
                        return _database_unavailable()
                if response.streaming:
                    response.streaming_content = _in_tenant(
                        response.streaming_content, principal.tenant
                    )
                return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        # ATOMIC_REQUESTS opens the view's transaction before DRF's handler can map the error.
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return _database_unavailable()
        return None


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
