"""API representations of workflows and runs; no business logic here (see services)."""

from __future__ import annotations

from rest_framework import serializers

from workflows.models import Workflow, WorkflowRun


def _json_object(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    return value


class WorkflowSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True, default=None)
    definition = serializers.JSONField(required=False, validators=[_json_object])

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


class WorkflowRunSerializer(serializers.ModelSerializer):
    # Built at import time; the tenant manager resolves the tenant when it is evaluated, so a
    # workflow id of another tenant gets the same "does not exist" as an id nobody has.
    workflow = serializers.PrimaryKeyRelatedField(queryset=Workflow.objects.all())
    input = serializers.JSONField(required=False, validators=[_json_object])
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
        read_only_fields = [
            "id",
            "status",
            "output",
            "started_at",
            "finished_at",
            "created_at",
            "error",
            "log",
            "approvals",
            "attempts",
            "cancel_requested",
            "retry_of",
        ]


class WorkflowRunCreateSerializer(serializers.Serializer):
    """Body of POST /api/workflows/{id}/runs/: the workflow comes from the URL."""

    input = serializers.JSONField(required=False, validators=[_json_object])


class RunApprovalSerializer(serializers.Serializer):
    """Body of POST /api/runs/{id}/approve/: the approval step's name."""

    approval = serializers.CharField(max_length=100)


class MeSerializer(serializers.Serializer):
    user = serializers.DictField()
    tenant = serializers.DictField()
    role = serializers.CharField()
