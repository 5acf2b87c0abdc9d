"""Workflow and WorkflowRun (tenant-owned, keyed and indexed by tenant first) and RunTicket, the
global queue entry through which the worker finds queued runs (docs/background-work.md)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.constraints import GlobalRowSecurity
from tenants.models import Tenancy, TenantModel


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
        WAITING = "waiting", "Waiting for approval"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    # Defaults in the database too: SQL that inserts a run without these columns still works.
    error = models.TextField(blank=True, default="", db_default="")
    # Execution state, so that a run resumes where it stopped (after an approval, or on another
    # worker after its first one was lost): the next instruction and the per-step log.
    step = models.PositiveIntegerField(default=0, db_default=0)
    log = models.JSONField(default=list, blank=True, db_default=[])
    approvals = models.JSONField(default=dict, blank=True, db_default={})
    attempts = models.PositiveIntegerField(default=0, db_default=0)
    cancel_requested = models.BooleanField(default=False, db_default=False)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
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


class RunTicket(models.Model):
    """A run waiting for (or held by) a worker: the queue, one row per unfinished run.

    Global, because a worker must find every tenant's queued runs without break-glass; under a
    tenant, SQL sees (and can insert) only that tenant's tickets. `tenant_ref` is the tenant
    the run was enqueued under, a plain number (no foreign key), so that a ticket outlives a
    deleted tenant and is refused instead of vanishing; the worker runs it in that tenant's
    context only. The row is deleted when the run finishes: the run keeps the history.
    """

    tenancy = Tenancy.GLOBAL

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for approval"

    tenant_ref = models.BigIntegerField(null=True, blank=True)
    run_ref = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # Fairness: the ticket's place in its tenant's queue (1 = the tenant's next run). Workers
    # take the lowest position first, so tenants are served round robin.
    position = models.PositiveIntegerField(default=1)
    # Fencing: each claim increments the attempt; a worker writes only while the ticket still
    # carries its attempt, so a run lost and retried is never advanced by two workers.
    attempt = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A run's id is unique within its tenant only: tenants in dedicated databases
            # number their runs themselves (docs/placement.md).
            models.UniqueConstraint(fields=["tenant_ref", "run_ref"], name="runticket_run_uniq"),
            GlobalRowSecurity(name="workflows_runticket_rls", under_tenant="tenant_ref = {tenant}"),
        ]
        indexes = [
            models.Index(fields=["state", "position", "id"], name="runticket_next"),
            models.Index(fields=["state", "lease_until"], name="runticket_lease"),
            models.Index(fields=["tenant_ref", "state", "position"], name="runticket_tenant"),
        ]

    def __str__(self) -> str:
        return f"ticket of run {self.run_ref} ({self.state})"
