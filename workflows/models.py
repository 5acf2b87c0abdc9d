"""Workflow and WorkflowRun: tenant-owned, keyed and indexed by tenant first."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.models import TenantModel


class Workflow(TenantModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    definition = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="workflow_tenant_name_uniq")
        ]
        indexes = [
            # The list endpoint: newest first within one tenant, keyset-paginated.
            models.Index(fields=["tenant", "-created_at", "-id"], name="workflow_tenant_newest"),
            models.Index(fields=["tenant", "status", "-created_at"], name="workflow_tenant_status"),
        ]

    def __str__(self) -> str:
        return self.name


class WorkflowRun(TenantModel):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="run_tenant_newest"),
            models.Index(fields=["tenant", "workflow", "-created_at"], name="run_workflow_newest"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.workflow_id}"
