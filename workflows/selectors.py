"""Reads of workflows and runs; every one is scoped by the tenant manager."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.placement.router import joins_global_rows
from workflows.models import Workflow, WorkflowRun


def workflow_list() -> QuerySet[Workflow]:
    # The owners in the same query where a join can reach them; otherwise in a second query
    # (one per page: id IN (...)). On Citus the workflows are distributed and the users stay
    # on the coordinator, and Citus cannot plan that join while the user table has row
    # security ("failed to postpone qual containing lateral reference"; docs/citus.md); a
    # tenant in a dedicated database has its users in `default`, which a join cannot reach
    # (docs/placement.md). The second query cost a shared tenant's list about a tenth of its
    # CPU (docs/benchmarks.md, pair 6).
    workflows = Workflow.objects.all()
    if joins_global_rows():
        return workflows.select_related("owner")
    return workflows.prefetch_related("owner")


def run_list(*, workflow: Workflow | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all()
    return runs.filter(workflow=workflow) if workflow is not None else runs
