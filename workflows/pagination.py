"""Keyset (cursor) pagination: page N of a million-row tenant costs the same as page 1."""

# A cursor is opaque but only base64 of a query string, so its position is checked against the
# ordering field before it reaches SQL: an altered cursor is a 404 "Invalid cursor", as DRF
# answers a cursor it cannot decode.

from __future__ import annotations

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from ameide.api_errors import InvalidCursor
from ameide.api_io import text_problem, timestamp_problem

_DIGITS = re.compile(r"[0-9]+")


class NewestFirstCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    invalid_cursor_message = InvalidCursor.default_detail

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        digits = raw.lstrip("0") if _DIGITS.fullmatch(raw) else ""
        if not digits:
            raise ValidationError({self.page_size_query_param: ["Must be a positive integer."]})
        # Larger sizes are capped, as documented (a long digit string is never parsed).
        return self.max_page_size if len(digits) > 6 else min(int(digits), self.max_page_size)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise InvalidCursor() from None
        position = cursor.position if cursor is not None else None
        if position is not None and not self._position_is_valid(position):
            raise InvalidCursor()
        return cursor

    def _position_is_valid(self, position: str) -> bool:
        if text_problem(position):
            return False
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        if isinstance(field, models.DateTimeField):
            try:
                parsed = parse_datetime(position)
            except ValueError:
                return False
            return parsed is not None and timestamp_problem(parsed) is None
        try:
            field.to_python(position)
        except DjangoValidationError:
            return False
        return True

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque: take it from `next` or `previous` of a page. "
                "A cursor the API did not issue is a 404 (`invalid_cursor`).",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page: {self.page_size} by default, "
                f"larger values count as {self.max_page_size}.",
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
