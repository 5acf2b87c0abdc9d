"""Writes of workflows and runs; the tenant always comes from the context."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from limits.quotas import enforce_quotas
from workflows.errors import DuplicateName
from workflows.models import Workflow, WorkflowRun


def _save_unique(workflow: Workflow) -> Workflow:
    try:
        # A savepoint, so that losing a race on the name leaves the request's transaction usable.
        with transaction.atomic():
            workflow.save()
    except IntegrityError as exc:
        if "workflow_tenant_name_uniq" in str(exc):
            raise DuplicateName(workflow.name) from exc
        raise
    return workflow


def workflow_create(
    *,
    name: str,
    description: str = "",
    definition: dict[str, Any] | None = None,
    status: str = Workflow.Status.DRAFT,
    owner: User | None = None,
) -> Workflow:
    workflow = Workflow(
        name=name,
        description=description,
        definition=definition or {},
        status=status,
        owner=owner,
    )
    # The quota is checked in the write's transaction: racing writers cannot both pass it.
    with transaction.atomic():
        enforce_quotas(model=Workflow)
        return _save_unique(workflow)


def workflow_update(*, workflow: Workflow, **changes: Any) -> Workflow:
    allowed = {"name", "description", "definition", "status"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"Cannot change {sorted(unknown)} of a workflow.")
    for field, value in changes.items():
        setattr(workflow, field, value)
    return _save_unique(workflow)


def workflow_delete(*, workflow: Workflow) -> None:
    workflow.delete()


def run_start(*, workflow: Workflow, input: dict[str, Any] | None = None) -> WorkflowRun:
    with transaction.atomic():
        enforce_quotas(model=WorkflowRun)
        return WorkflowRun.objects.create(
            workflow=workflow,
            input=input or {},
            status=WorkflowRun.Status.QUEUED,
        )


def run_finish(
    *, run: WorkflowRun, status: str, output: dict[str, Any] | None = None
) -> WorkflowRun:
    run.status = status
    run.output = output or {}
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "output", "finished_at"])
    return run
