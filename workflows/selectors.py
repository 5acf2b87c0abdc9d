"""Reads of workflows and runs; every one is scoped by the tenant manager."""

from __future__ import annotations

from django.db.models import QuerySet

from workflows.models import Workflow, WorkflowRun


def workflow_list() -> QuerySet[Workflow]:
    # The owners come in a second query (one per page: id IN (...)), not a join. On Citus the
    # workflows are distributed and the users stay on the coordinator, and Citus cannot plan
    # that join while the user table has row security ("failed to postpone qual containing
    # lateral reference"; docs/citus.md); a tenant in a dedicated database has its users in
    # `default`, which a join cannot reach (docs/placement.md). One shape for every placement.
    return Workflow.objects.prefetch_related("owner")


def run_list(*, workflow: Workflow | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all()
    return runs.filter(workflow=workflow) if workflow is not None else runs
