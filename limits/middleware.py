"""Per-tenant admission and accounting of every request (after tenants.middleware, so the
tenant is known and set): rate and concurrency limits for the API, the tenant's statement
timeout, usage, metrics and one JSON log line per request."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from limits import metrics, selectors
from limits.errors import LimitsUnavailable, QuotaExceeded
from limits.responses import (
    is_statement_timeout,
    limits_unavailable_response,
    quota_response,
    rate_headers,
    statement_timeout_response,
    too_many_requests,
)
from limits.sql import start_meter, stop_meter
from limits.store import get_store
from limits.usage import recorder
from tenants.actor import current_actor
from tenants.db.timeouts import statement_timeout

logger = logging.getLogger("ameide.request")


class LimitsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        actor = current_actor()
        # For lines logged after the middleware returns (tenants.logging).
        request.request_id, request.log_user = actor.request_id, actor.name
        meter, token = start_meter()
        tenant = getattr(request, "tenant", None)
        try:
            if tenant is None:
                response = self.get_response(request)
            else:
                response = self._admit(request, tenant)
        finally:
            stop_meter(token)
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        db_ms = int(meter.seconds * 1000)
        if tenant is not None:
            recorder.add(
                tenant_id=tenant.pk,
                status=response.status_code,
                latency_ms=elapsed_ms,
                db_ms=db_ms,
                queries=meter.queries,
            )
            metrics.observe(tenant=tenant, status=response.status_code, seconds=elapsed_ms / 1000)
        logger.info(
            "%s %s %s",
            request.method,
            request.path[:200],
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path[:200],
                "status": response.status_code,
                "duration_ms": elapsed_ms,
                "db_ms": db_ms,
                "queries": meter.queries,
            },
        )
        return response

    def _admit(self, request: HttpRequest, tenant) -> HttpResponse:
        limits = selectors.limits_of(tenant_id=tenant.pk)
        with statement_timeout(tenant_id=tenant.pk, milliseconds=limits.statement_timeout_ms):
            if not request.path.startswith(settings.TENANCY_LIMITED_PATH):
                return self.get_response(request)
            store = get_store()
            try:
                decision, lease = store.admit(tenant_id=tenant.pk, limits=limits)
            except LimitsUnavailable as exc:
                # Fail closed: a request whose limits cannot be checked is not run. One line,
                # no traceback: an outage refuses every API request.
                logger.warning("limits store unavailable, request refused: %s", exc)
                return limits_unavailable_response()
            if not decision.allowed:
                return too_many_requests(limits=limits, decision=decision)
            if lease is None:
                return too_many_requests(limits=limits, decision=None)
            try:
                response = self.get_response(request)
            finally:
                try:
                    store.release(tenant_id=tenant.pk, lease=lease)
                except LimitsUnavailable as exc:
                    # The work is done; its answer stands. The lease expires by itself after
                    # TENANCY_LEASE_SECONDS.
                    logger.warning("lease not released, it expires by itself: %s", exc)
            rate_headers(response, limits=limits, decision=decision)
            return response

    def process_exception(self, request: HttpRequest, exception: Exception):
        # Pages outside DRF (which maps these in ameide.api_errors) get the same answers.
        if isinstance(exception, QuotaExceeded):
            return quota_response(exception)
        if is_statement_timeout(exception):
            return statement_timeout_response()
        return None
