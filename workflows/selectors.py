"""Reads of workflows and runs; every one is scoped by the tenant manager."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.placement.router import joins_global_rows
from workflows.models import Workflow, WorkflowRun


def workflow_list() -> QuerySet[Workflow]:
    # The owners in the same query where PostgreSQL can join them well, otherwise in a second
    # query (one per page: id IN (...)); tenants.placement.router.joins_global_rows says
    # where, and why not elsewhere. The second query cost a shared tenant's list about a tenth
    # of its CPU (docs/benchmarks.md, pair 6).
    workflows = Workflow.objects.all()
    if joins_global_rows():
        return workflows.select_related("owner")
    return workflows.prefetch_related("owner")


def run_list(*, workflow: Workflow | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all()
    return runs.filter(workflow=workflow) if workflow is not None else runs
