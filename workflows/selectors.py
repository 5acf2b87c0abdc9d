"""Reads of workflows and runs; every one is scoped by the tenant manager."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, router
from django.db.models import QuerySet

from workflows.models import Workflow, WorkflowRun


def workflow_list() -> QuerySet[Workflow]:
    workflows = Workflow.objects.all()
    if router.db_for_read(Workflow) != DEFAULT_DB_ALIAS:
        # A tenant in a dedicated database: its owners are users in `default`, which a join
        # cannot reach; one more query fetches them (docs/placement.md).
        return workflows.prefetch_related("owner")
    return workflows.select_related("owner")


def run_list(*, workflow: Workflow | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all()
    return runs.filter(workflow=workflow) if workflow is not None else runs
