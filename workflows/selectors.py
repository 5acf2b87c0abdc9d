"""Reads of workflows and runs; every one is scoped by the tenant manager."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from tenants.placement.router import joins_global_rows
from workflows.models import Workflow, WorkflowRun

# What the API shows of a workflow's owner (workflows.serializers): its name. The list reads
# that and the key, not the user's 13 other columns (its password hash among them), which were
# more than half of what a page's rows carried and cost about 0.1 ms of CPU a page
# (docs/benchmarks.md).
OWNER_COLUMNS = ("id", "username")
LIST_COLUMNS = (
    *(field.name for field in Workflow._meta.concrete_fields),
    *(f"owner__{column}" for column in OWNER_COLUMNS),
)


def workflow_list() -> QuerySet[Workflow]:
    # The owners in the same query where PostgreSQL can join them well, otherwise in a second
    # query (one per page: id IN (...)); tenants.placement.router.joins_global_rows says
    # where, and why not elsewhere. The second query cost a shared tenant's list about a tenth
    # of its CPU (docs/benchmarks.md, pair 6).
    workflows = Workflow.objects.all()
    if joins_global_rows():
        return workflows.select_related("owner").only(*LIST_COLUMNS)
    # The related model's base manager, as a plain prefetch_related("owner") uses.
    owners = Workflow._meta.get_field("owner").related_model._base_manager.only(*OWNER_COLUMNS)
    return workflows.prefetch_related(Prefetch("owner", queryset=owners))


def run_list(*, workflow: Workflow | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all()
    return runs.filter(workflow=workflow) if workflow is not None else runs
