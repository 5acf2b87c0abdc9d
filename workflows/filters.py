"""Query filters of the workflows API (django-filter); all run inside the tenant's rows."""

# Strict: a filter given with an empty or invalid value, or an unknown ordering, is a 400
# (never silently ignored), and each parameter is documented as exactly what it accepts.

from __future__ import annotations

import re

import django_filters
from django import forms
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

from ameide.api_io import timestamp_problem
from workflows.models import Workflow, WorkflowRun

# RFC 3339 narrowed to what Python and PostgreSQL can both hold: a year from 0001, no leap
# second, at most microseconds, an offset within +/-15:59 (or Z). The server matches the same
# pattern, so the schema says exactly what is accepted; a day that does not exist is a 400.
TIMESTAMP_PATTERN = (
    r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])$"
)
TIMESTAMP_SCHEMA = {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}
TEXT_SCHEMA = {"type": "string", "minLength": 1}
MAX_ID = 2**63 - 1  # bigint


class TimestampField(forms.Field):
    """An instant with its UTC offset, as TIMESTAMP_PATTERN spells it."""

    default_error_messages = {
        "invalid": "Enter a timestamp like 2024-05-01T12:00:00Z (RFC 3339, UTC offset within "
        "+/-15:59)."
    }

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if not re.fullmatch(TIMESTAMP_PATTERN, value):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None or timestamp_problem(parsed):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return parsed


@extend_schema_field(TIMESTAMP_SCHEMA)
class TimestampFilter(django_filters.Filter):
    field_class = TimestampField


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.Filter):
    field_class = forms.IntegerField


class StrictFilterSet(django_filters.FilterSet):
    """A filter given in the query must have a value: `?status=` is a 400, not "no filter"."""

    def is_valid(self):
        valid = super().is_valid()
        for name in self.filters:
            if name in self.data and self.data.get(name) == "":
                self.form.add_error(name, "This filter must not be empty.")
                valid = False
        return valid


class WorkflowFilter(StrictFilterSet):
    name = extend_schema_field(TEXT_SCHEMA)(
        django_filters.CharFilter(field_name="name", lookup_expr="icontains", strip=False)
    )
    created_after = TimestampFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimestampFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Workflow
        fields = ["status", "name", "created_after", "created_before"]


class RunStatusFilter(StrictFilterSet):
    """Filters of the runs of one workflow (GET /api/workflows/{id}/runs/)."""

    class Meta:
        model = WorkflowRun
        fields = ["status"]


class WorkflowRunFilter(RunStatusFilter):
    # An id, not a choice among the tenant's workflows: an id of another tenant matches
    # nothing, exactly like an id nobody has (and no query runs to validate it).
    workflow = IdFilter(field_name="workflow_id", min_value=1, max_value=MAX_ID)

    class Meta:
        model = WorkflowRun
        fields = ["status", "workflow"]


class StrictOrderingFilter(OrderingFilter):
    """`?ordering=` takes one of the view's `ordering_fields`, `-` for descending; anything
    else is a 400. The id breaks ties in the same direction, so pages never overlap."""

    def terms(self, view) -> list[str]:
        fields = getattr(view, "ordering_fields", None) or []
        return [term for field in fields for term in (field, f"-{field}")]

    def get_ordering(self, request, queryset, view):
        term = request.query_params.get(self.ordering_param)
        if term is None:
            return self.get_default_ordering(view)
        allowed = self.terms(view)
        if term not in allowed:
            raise ValidationError({self.ordering_param: [f"Must be one of: {', '.join(allowed)}."]})
        return (term, "-id" if term.startswith("-") else "id")

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Sort by this field; a leading `-` sorts descending.",
                "schema": {"type": "string", "enum": self.terms(view)},
            }
        ]
