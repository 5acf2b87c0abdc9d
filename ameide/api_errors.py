"""JSON errors for the API: DRF's shapes, plus tenancy and database failures."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from tenants.exceptions import TenantNotSet

logger = logging.getLogger("ameide.api")


def json_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is not None:
        return response
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
