"""Reads of workflows and runs; every one is scoped by the tenant manager."""

from __future__ import annotations

from django.db.models import QuerySet

from workflows.models import Workflow, WorkflowRun


def workflow_list() -> QuerySet[Workflow]:
    return Workflow.objects.select_related("owner")


def run_list(*, workflow: Workflow | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all()
    return runs.filter(workflow=workflow) if workflow is not None else runs
