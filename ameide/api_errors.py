"""JSON errors for the API: DRF's shapes, plus tenancy and database failures."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from limits.errors import QuotaExceeded
from limits.responses import is_statement_timeout, quota_body, statement_timeout_body
from tenants.exceptions import TenantNotSet

logger = logging.getLogger("ameide.api")


def json_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, QuotaExceeded):
        set_rollback()  # nothing of the refused write is kept
        return Response(quota_body(exc), status=403)
    if is_statement_timeout(exc):
        logger.warning("statement timeout: %s", exc)
        set_rollback()  # the transaction is aborted: end it, commit nothing
        return Response(statement_timeout_body(), status=503, headers={"Retry-After": "1"})
    if isinstance(exc, TenantNotSet):
        return Response({"detail": "No tenant.", "code": "tenant_required"}, status=403)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        response = Response(
            {"detail": "The database is unavailable; try again shortly.", "code": "unavailable"},
            status=503,
        )
        response["Retry-After"] = "5"
        return response
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
    return None
