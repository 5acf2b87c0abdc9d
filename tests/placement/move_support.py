"""Helpers of the move tests: a tenant with rows in two tables, its rows read from every
placement, and the clean-up of what a move leaves behind (schemas, the change log, triggers)."""

from __future__ import annotations

from django.db import connection

from tenants.context import tenant_context, unscoped
from tenants.models import Tenant
from tests.rls.support import owner_execute
from workflows.models import Workflow, WorkflowRun

MOVE_SCHEMAS = ("pmove_one", "pmove_two")


def seed(tenant: Tenant, *, workflows: int = 5, runs: int = 2, tag: str = "") -> None:
    with tenant_context(tenant):
        for w in range(workflows):
            workflow = Workflow.objects.create(
                name=f"{tenant.slug} {tag}{w}", definition={"steps": [w]}, description="é ünïcode"
            )
            for r in range(runs):
                WorkflowRun.objects.create(workflow=workflow, input={"n": r})


def placed_rows(tenant_id: int) -> dict[str, dict[str, list[tuple]]]:
    """schema -> table -> the tenant's rows there (id and a few columns), in every placement."""
    schemas = ["public", *MOVE_SCHEMAS]
    found: dict[str, dict[str, list[tuple]]] = {}
    with unscoped(reason="test: rows of a tenant in every placement"), connection.cursor() as c:
        for schema in schemas:
            c.execute("SELECT to_regnamespace(%s) IS NOT NULL", [schema])
            if not c.fetchone()[0]:
                continue
            for table, columns in (
                ("workflows_workflow", "id, name, definition::text"),
                ("workflows_workflowrun", "id, workflow_id, input::text"),
            ):
                c.execute(
                    f'SELECT {columns} FROM "{schema}"."{table}" WHERE tenant_id = %s ORDER BY id',  # noqa: S608
                    [tenant_id],
                )
                rows = c.fetchall()
                if rows:
                    found.setdefault(schema, {})[table] = rows
    return found


def app_rows(tenant: Tenant) -> dict[str, list[tuple]]:
    """What the application itself sees of the tenant (through its placement's routing)."""
    tenant = Tenant.objects.get(pk=tenant.pk)
    with tenant_context(tenant):
        return {
            "workflows_workflow": [
                (w.id, w.name, w.definition) for w in Workflow.objects.order_by("id")
            ],
            "workflows_workflowrun": [
                (r.id, r.workflow_id, r.input) for r in WorkflowRun.objects.order_by("id")
            ],
        }


def triggers() -> list[tuple]:
    return owner_execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
        "WHERE tgname LIKE 'ameide_move_%' ORDER BY 1, 2"
    )


def private_rows() -> tuple[int, int]:
    changes = owner_execute(
        "SELECT count(*) FROM ameide_private.placement_change "
        "WHERE to_regclass('ameide_private.placement_change') IS NOT NULL"
    )
    freezes = owner_execute(
        "SELECT count(*) FROM ameide_private.placement_freeze "
        "WHERE to_regclass('ameide_private.placement_freeze') IS NOT NULL"
    )
    return changes[0][0], freezes[0][0]


def clean_up() -> None:
    for schema in MOVE_SCHEMAS:
        owner_execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for table, name in triggers():
        owner_execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    owner_execute(
        "DO $$ BEGIN IF to_regclass('ameide_private.placement_change') IS NOT NULL THEN "
        "DELETE FROM ameide_private.placement_change; DELETE FROM ameide_private.placement_freeze; "
        "END IF; END $$"
    )
