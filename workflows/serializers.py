"""API representations of workflows and runs; no business logic here (see services)."""

# Fields take exactly the JSON types the schema documents: DRF would turn `10000000.0` into the
# name "10000000.0" and `"7"` into the id 7, which the schema (and a client) calls invalid.

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ameide.api_io import ModelSerializer
from workflows.models import Workflow, WorkflowRun

MAX_ID = 2**63 - 1  # bigint
# Whitespace as either Python's str.strip() or a JSON Schema (ECMA) `\s` sees it, and the C0
# and C1 controls: a name neither begins nor ends with one, so the schema's pattern and the
# server agree on every string (no trimming, which would accept what the pattern refuses).
_EDGE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NAME_PATTERN = rf"^[^{_EDGE}]([^\x00]*[^{_EDGE}])?$"
NAME_MAX_LENGTH = Workflow._meta.get_field("name").max_length
JSON_OBJECT_SCHEMA = {"type": "object", "additionalProperties": {}}


class StrictCharField(serializers.CharField):
    """A JSON string, never a number turned into one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": NAME_PATTERN}
)
class NameField(StrictCharField):
    default_error_messages = {
        "pattern": "Must not begin or end with whitespace or a control character."
    }

    def __init__(self, **kwargs):
        super().__init__(max_length=NAME_MAX_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not re.fullmatch(NAME_PATTERN, value):
            self.fail("pattern")
        return value


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class StrictIdField(serializers.IntegerField):
    """A JSON integer (1.0 counts, as in JSON Schema), never a string or a fraction."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(int(data))


@extend_schema_field(JSON_OBJECT_SCHEMA)
class JSONObjectField(serializers.JSONField):
    """A JSON object (the parser already refused what PostgreSQL cannot store)."""

    default_error_messages = {"not_an_object": "Must be a JSON object."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_an_object")
        return super().to_internal_value(data)


class WorkflowSerializer(ModelSerializer):
    name = NameField()
    description = StrictCharField(required=False, allow_blank=True)
    owner = serializers.CharField(
        source="owner.username", read_only=True, default=None, allow_null=True
    )
    definition = JSONObjectField(required=False)

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "definition",
            "status",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "owner", "created_at", "updated_at"]
        # Uniqueness is per tenant and enforced by the service and the database.
        validators = []


class WorkflowRunSerializer(ModelSerializer):
    # Built at import time; the tenant manager resolves the tenant when it is evaluated, so a
    # workflow id of another tenant gets the same "does not exist" as an id nobody has.
    workflow = serializers.PrimaryKeyRelatedField(
        queryset=Workflow.objects.all(), pk_field=StrictIdField()
    )
    input = JSONObjectField(required=False)
    output = serializers.JSONField(read_only=True)

    class Meta:
        model = WorkflowRun
        fields = [
            "id",
            "workflow",
            "status",
            "input",
            "output",
            "started_at",
            "finished_at",
            "created_at",
            # Background execution (docs/background-work.md).
            "error",
            "log",
            "approvals",
            "attempts",
            "cancel_requested",
            "retry_of",
        ]
        # Everything but what a caller sends: the workflow to run and its input.
        read_only_fields = [f for f in fields if f not in ("workflow", "input")]


class WorkflowRunCreateSerializer(serializers.Serializer):
    """Body of POST /api/workflows/{id}/runs/: the workflow comes from the URL."""

    input = JSONObjectField(required=False)


class RunApprovalSerializer(serializers.Serializer):
    """Body of POST /api/runs/{id}/approve/: the approval step's name."""

    # As sent, untrimmed: the schema's string is exactly what the server takes.
    approval = StrictCharField(min_length=1, max_length=100, trim_whitespace=False)


class MeSerializer(serializers.Serializer):
    user = serializers.DictField()
    tenant = serializers.DictField()
    role = serializers.CharField()
