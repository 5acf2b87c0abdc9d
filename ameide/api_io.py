"""What the API reads and writes: JSON bodies only, bounded in size and depth, holding only
values PostgreSQL can store; JSON answers (the browsable API only with DEBUG on)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.http import HttpRequest, HttpResponse
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import ISO_8601, serializers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BrowsableAPIRenderer

from ameide.api_errors import NON_FIELD, PayloadTooLarge, error_response, is_api_request

JSON_MEDIA_TYPE = "application/json"
# Containers (objects and arrays) inside one another in a request body, the body itself
# counting as the first. Generous for workflow definitions, far below Python's recursion limit.
MAX_JSON_DEPTH = 64
# An over-long body is read and thrown away up to this many times the limit before the 413, so
# that the client, still sending, reads the answer instead of a reset connection; beyond it
# the body is left unread.
DRAIN_FACTOR = 4
# PostgreSQL refuses a timestamp whose UTC offset is 16 hours or more (Python allows 24).
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


def body_limit() -> int:
    """Largest request body in bytes: Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB default)."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440


# --- values PostgreSQL can store ----------------------------------------------------------------
def text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "NUL characters are not allowed."
    if any("\ud800" <= char <= "\udfff" for char in value):
        return "Unpaired surrogates are not allowed."
    return None


def timestamp_problem(value: datetime) -> str | None:
    offset = value.utcoffset()
    if offset is None:
        return "A UTC offset (or Z) is required."
    if abs(offset) > MAX_UTC_OFFSET:
        return "The UTC offset must be between -15:59 and +15:59."
    return None


def _segment(key: str) -> str:
    # Escaped, so that a message never carries the character it refuses.
    return key.encode("unicode_escape").decode("ascii")


def json_problem(value: Any) -> tuple[str | None, str, str] | None:
    """(top-level key, JSON path, message) of the first value the API refuses, or None.

    Iterative, so a body of any depth the parser produced is safe to walk. The top-level key is
    None when the problem is not under a clean key of the body object.
    """
    stack: list[tuple[Any, int, str, str | None]] = [(value, 1, "$", None)]
    while stack:
        item, depth, path, top = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                message = f"JSON must not be nested more than {MAX_JSON_DEPTH} levels deep."
                return top, path, message
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    problem = text_problem(key)
                    if problem:
                        return top, path, f"Key: {problem}"
                    child_path = f"{path}.{_segment(key)}"
                else:
                    child_path = f"{path}[{key}]"
                child_top = top if depth > 1 or not isinstance(key, str) else key
                stack.append((child, depth + 1, child_path, child_top))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return top, path, problem
        elif isinstance(item, float) and not math.isfinite(item):
            return top, path, "Numbers must be finite."
    return None


class JSONBodyParser(JSONParser):
    """DRF's strict JSON parser, plus the depth and value checks above."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep."
            ) from None
        found = json_problem(data)
        if found is not None:
            top, path, message = found
            raise ValidationError({top or NON_FIELD: [f"{message} (at {path})"]})
        return data


class DebugOnlyBrowsableNegotiation(DefaultContentNegotiation):
    """The browsable API (`?format=api`, HTML) only with DEBUG on; JSON otherwise."""

    def select_renderer(self, request, renderers, format_suffix=None):
        if not settings.DEBUG:
            renderers = [r for r in renderers if not isinstance(r, BrowsableAPIRenderer)]
        return super().select_renderer(request, renderers, format_suffix)


# --- before anything reads the body ---------------------------------------------------------------
def _declared_length(request: HttpRequest) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class ApiBodyGuardMiddleware:
    """Under /api/, a request body must be JSON (else 415) and at most `body_limit()` bytes
    (else 413), decided from the headers before any middleware or view reads the body: a
    multipart upload is never parsed or stored, whatever the authentication."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = _declared_length(request)
        if length and is_api_request(request):
            if request.content_type != JSON_MEDIA_TYPE:
                return error_response(
                    f"Only {JSON_MEDIA_TYPE} request bodies are accepted.",
                    "unsupported_media_type",
                    415,
                )
            limit = body_limit()
            if length > limit:
                if length <= DRAIN_FACTOR * limit:
                    while request.read(65536):
                        pass
                return error_response(
                    f"{PayloadTooLarge.default_detail} The limit is {limit} bytes.",
                    PayloadTooLarge.default_code,
                    413,
                )
        return self.get_response(request)


class UTCDateTimeField(serializers.DateTimeField):
    """DRF's DateTimeField, writing ISO 8601 in UTC without a time-zone lookup per value.

    DRF asks Django for the current time zone for every value it writes (a thread-local read):
    200 times for a page of 50 workflows with four timestamps. The project's zone is UTC and
    nothing activates another, so the output is the same: `2026-12-01T10:00:00.123456Z`.
    """

    def to_representation(self, value):
        if (
            isinstance(value, datetime)
            and value.tzinfo is not None
            and getattr(self, "format", None) in (None, ISO_8601)
            and settings.TIME_ZONE == "UTC"
        ):
            text = value.astimezone(UTC).isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().to_representation(value)


class ModelSerializer(serializers.ModelSerializer):
    """The API's model serializer: DRF's, with UTCDateTimeField for date-time columns."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: UTCDateTimeField,
    }


class FilterBackend(DjangoFilterBackend):
    """django-filter, skipped when the request names none of the view's filters: building
    the filter set and its form is most of what a list request that filters nothing would pay
    for it. A request that names one is filtered, and refused when invalid, as before."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None and not _names_a_filter(
            request.query_params, filterset_class.base_filters
        ):
            return queryset
        return super().filter_queryset(request, queryset, view)


def _names_a_filter(params, filters) -> bool:
    # Range widgets read NAME_after / NAME_min and the like: a prefix names the filter too.
    return any(p == name or p.startswith(name + "_") for p in params for name in filters)
