"""Every API error in one JSON shape: {"detail", "code"} plus "errors" for invalid fields."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers, status

from limits.errors import QuotaExceeded
from limits.responses import is_statement_timeout
from tenants.exceptions import TenantNotSet
from tenants.placement.capture import is_frozen_error

logger = logging.getLogger("ameide.api")

API_PREFIX = "/api/"
INVALID = "Invalid input."
NON_FIELD = "non_field_errors"


# --- the shape -------------------------------------------------------------------------------
def error_body(
    detail: str, code: str, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": str(detail), "code": str(code)}
    if errors is not None:
        body["errors"] = errors
    return body


def _messages(value: Any, prefix: str = "") -> list[str]:
    """Flatten DRF's nested error details into "path: message" strings (the documented type)."""
    if isinstance(value, dict):
        return [m for key, item in value.items() for m in _messages(item, f"{prefix}{key}: ")]
    if isinstance(value, list):
        return [m for item in value for m in _messages(item, prefix)]
    return [f"{prefix}{value}"]


def field_errors(detail: Any) -> dict[str, list[str]]:
    if not isinstance(detail, dict):
        return {NON_FIELD: _messages(detail)}
    return {str(field): _messages(value) for field, value in detail.items()}


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer of the API (for the schema)."""

    detail = serializers.CharField(help_text="What went wrong, for people.")
    code = serializers.CharField(help_text="What went wrong, for programs; stable.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Only on invalid input: the messages per field or query parameter.",
    )


# --- errors the API raises besides DRF's ------------------------------------------------------
class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


class Conflict(exceptions.APIException):
    """The request is well formed but clashes with what exists (a taken name): 409."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"

    def __init__(self, detail=None, code=None, errors: dict[str, list[str]] | None = None):
        super().__init__(detail, code)
        self.errors = errors


class InvalidCursor(exceptions.NotFound):
    # A cursor names a page; one that was not issued by the API names no page (DRF's choice).
    default_detail = "Invalid cursor."
    default_code = "invalid_cursor"


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; try again shortly."
    default_code = "unavailable"
    wait = 5  # DRF turns it into Retry-After


class QuotaExceededError(exceptions.PermissionDenied):
    """A write past one of the tenant's quotas (limits.quotas); the detail names the limit."""

    default_detail = "Quota exceeded."
    default_code = "quota_exceeded"


class StatementTimeout(exceptions.APIException):
    """A statement ran past the tenant's statement timeout and PostgreSQL cancelled it."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The request ran past the tenant's statement timeout and was cancelled."
    default_code = "statement_timeout"
    wait = 1  # DRF turns it into Retry-After


class TenantMoving(exceptions.APIException):
    """The tenant is in the freeze of a move (tenants.placement): its writes are refused for
    a moment, its reads go on."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "This tenant is being moved; writes are paused for a moment. Retry."
    default_code = "tenant_moving"
    wait = 1  # DRF turns it into Retry-After


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, TenantNotSet):
        return exceptions.PermissionDenied("No tenant.", code="tenant_required")
    if isinstance(exc, QuotaExceeded):
        return QuotaExceededError(exc.detail)
    if is_frozen_error(exc):  # before the OperationalError it also is
        return TenantMoving()
    if is_statement_timeout(exc):  # before the OperationalError it also is
        logger.warning("statement timeout: %s", exc)
        return StatementTimeout()
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        return Unavailable()
    return exc


def json_exception_handler(exc, context):
    # Imported here: rest_framework.views reads the API settings, which name ameide.api_io,
    # which imports this module.
    from rest_framework.views import exception_handler

    exc = _as_api_exception(exc)
    response = exception_handler(exc, context)  # also marks the transaction for rollback
    if response is None:
        if isinstance(exc, DatabaseError):
            logger.exception("database error")
        return None  # a 500: handler500 below answers it in the same shape
    if isinstance(exc, exceptions.ValidationError) or isinstance(exc.detail, dict | list):
        response.data = error_body(INVALID, "invalid", field_errors(exc.detail))
    else:
        code = getattr(exc.detail, "code", None) or exc.default_code
        response.data = error_body(exc.detail, code, getattr(exc, "errors", None))
    return response


# --- Django's own error views: the same shape under /api/, Django's pages elsewhere ----------
def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def error_response(detail: str, code: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(detail, code), status=status_code)


def bad_request(request, exception, *args, **kwargs) -> HttpResponse:
    if is_api_request(request):
        if isinstance(exception, RequestDataTooBig):
            return error_response(PayloadTooLarge.default_detail, PayloadTooLarge.default_code, 413)
        return error_response("Bad request.", "bad_request", 400)
    return defaults.bad_request(request, exception, *args, **kwargs)


def permission_denied(request, exception, *args, **kwargs) -> HttpResponse:
    if is_api_request(request):
        return error_response(exceptions.PermissionDenied.default_detail, "permission_denied", 403)
    return defaults.permission_denied(request, exception, *args, **kwargs)


def page_not_found(request, exception, *args, **kwargs) -> HttpResponse:
    if is_api_request(request):
        return error_response(exceptions.NotFound.default_detail, "not_found", 404)
    return defaults.page_not_found(request, exception, *args, **kwargs)


def server_error(request, *args, **kwargs) -> HttpResponse:
    if is_api_request(request):
        return error_response("Server error.", "server_error", 500)
    return defaults.server_error(request, *args, **kwargs)
