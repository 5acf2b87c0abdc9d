"""Writes of workflows and runs; the tenant always comes from the context, and every write
leaves an audit row (tenants.audit) in its own transaction."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from limits.quotas import enforce_quotas
from tenants.audit import record_event
from tenants.context import current_tenant
from tenants.placement.router import tenant_atomic
from workflows.errors import DuplicateName, RunStateConflict
from workflows.models import RunTicket, Workflow, WorkflowRun


def audit(*, action: str, obj, changed: list[str] | tuple[str, ...] = (), **details: Any) -> None:
    """One audit row for a write of a workflow or run: field names only, never values."""
    record_event(
        action=action,
        tenant=current_tenant(),
        details={
            "object": obj._meta.label_lower,
            "id": obj.pk,
            "repr": str(obj)[:200],
            "changed": sorted(changed),
            **details,
        },
    )


def _save_unique(workflow: Workflow, *, action: str, changed: list[str]) -> Workflow:
    try:
        # No savepoint (two round trips per write): losing a race on the name ends the caller's
        # transaction, which rolls back at the end of its atomic block. The API answers 409
        # then, and nothing of the request is written.
        with tenant_atomic(savepoint=False):
            workflow.save()
            audit(action=action, obj=workflow, changed=changed)
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
    with tenant_atomic(savepoint=False):
        enforce_quotas(model=Workflow)
        return _save_unique(
            workflow,
            action="workflow.create",
            changed=["name", "description", "definition", "status", "owner"],
        )


def workflow_update(*, workflow: Workflow, **changes: Any) -> Workflow:
    allowed = {"name", "description", "definition", "status"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"Cannot change {sorted(unknown)} of a workflow.")
    changed = [field for field, value in changes.items() if getattr(workflow, field) != value]
    for field, value in changes.items():
        setattr(workflow, field, value)
    return _save_unique(workflow, action="workflow.change", changed=changed)


def workflow_delete(*, workflow: Workflow) -> None:
    with tenant_atomic():
        run_ids = list(WorkflowRun.objects.filter(workflow=workflow).values_list("pk", flat=True))
        RunTicket.objects.filter(tenant_ref=workflow.tenant_id, run_ref__in=run_ids).delete()
        audit(action="workflow.delete", obj=workflow, runs_deleted=len(run_ids))
        workflow.delete()


def enqueue(*, run: WorkflowRun) -> RunTicket:
    """Queue the run for a worker, under the current tenant, behind the tenant's other runs."""
    tenant = current_tenant()
    last = RunTicket.objects.filter(tenant_ref=tenant.pk, state=RunTicket.State.QUEUED).aggregate(
        last=Max("position")
    )["last"]
    return RunTicket.objects.create(tenant_ref=tenant.pk, run_ref=run.pk, position=(last or 0) + 1)


def run_start(
    *,
    workflow: Workflow,
    input: dict[str, Any] | None = None,
    retry_of: WorkflowRun | None = None,
) -> WorkflowRun:
    with tenant_atomic():
        enforce_quotas(model=WorkflowRun)  # in the write's transaction (limits.quotas)
        run = WorkflowRun.objects.create(
            workflow=workflow,
            input=input or {},
            status=WorkflowRun.Status.QUEUED,
            retry_of=retry_of,
        )
        enqueue(run=run)
        audit(
            action="run.retry" if retry_of else "workflow.run",
            obj=run,
            changed=["input"],
            workflow=workflow.pk,
            **({"retry_of": retry_of.pk} if retry_of else {}),
        )
    return run


def run_cancel(*, run: WorkflowRun) -> WorkflowRun:
    """Cancel now when no worker holds the run; else ask its worker to stop at the next step."""
    with tenant_atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        if run.status in WorkflowRun.FINISHED:
            raise RunStateConflict(f"The run is already {run.status}.")
        if run.status == WorkflowRun.Status.RUNNING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        else:
            RunTicket.objects.filter(tenant_ref=run.tenant_id, run_ref=run.pk).delete()
            run.status = WorkflowRun.Status.CANCELLED
            run.finished_at = timezone.now()
            run.log = [*run.log, {"at": run.finished_at.isoformat(), "event": "cancelled"}]
            run.save(update_fields=["status", "finished_at", "log"])
        audit(action="run.cancel", obj=run, changed=["cancel_requested"])
    return run


def run_retry(*, run: WorkflowRun) -> WorkflowRun:
    """A new run of the same workflow and input; the failed or cancelled one stays as it was."""
    if run.status not in (WorkflowRun.Status.FAILED, WorkflowRun.Status.CANCELLED):
        raise RunStateConflict("Only a failed or cancelled run can be retried.")
    return run_start(workflow=run.workflow, input=run.input, retry_of=run)


def run_approve(*, run: WorkflowRun, approval: str, by: str) -> WorkflowRun:
    """Give the approval the run waits for, and queue it again to go on from there."""
    with tenant_atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run.pk)
        waiting_for = next(
            (
                e.get("approval")
                for e in reversed(run.log)
                if e.get("event") == "waiting for approval"
            ),
            None,
        )
        if run.status != WorkflowRun.Status.WAITING or waiting_for != approval:
            raise RunStateConflict(f"The run is not waiting for the approval {approval!r}.")
        run.approvals = {**run.approvals, approval: by}
        run.status = WorkflowRun.Status.QUEUED
        run.save(update_fields=["approvals", "status"])
        RunTicket.objects.filter(tenant_ref=run.tenant_id, run_ref=run.pk).delete()
        enqueue(run=run)
        audit(action="run.approve", obj=run, changed=["approvals"], approval=approval)
    return run
