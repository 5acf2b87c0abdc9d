"""Helpers of the move tests: a tenant with rows in two tables, its rows read from every
placement (the dedicated databases too), and the clean-up of what a move leaves behind
(schemas, the change log, the freeze and triggers, in every database)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection, connections

from tenants.context import tenant_context, unscoped
from tenants.models import Tenant
from tests import dedicated
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
    for name in (dedicated.NEAR, dedicated.FAR) if dedicated.ENABLED else ():
        for table, rows in _database_rows(name, tenant_id).items():
            found.setdefault(f"database:{name}", {})[table] = rows
    return found


@contextmanager
def _owner(name: str) -> Iterator[psycopg.Connection]:
    """A plain connection as the owner of dedicated database `name` (outside the test's
    databases, as owner_execute is for `default`)."""
    params = connections[f"{dedicated.dedicated_alias(name)}_owner"].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    with psycopg.connect(**params, autocommit=True) as conn:
        yield conn


def _database_rows(name: str, tenant_id: int) -> dict[str, list[tuple]]:
    """The tenant's rows in dedicated database `name`, read as its owner (a superuser here)."""
    found = {}
    with _owner(name) as conn, conn.cursor() as c:
        for table, columns in (
            ("workflows_workflow", "id, name, definition::text"),
            ("workflows_workflowrun", "id, workflow_id, input::text"),
        ):
            c.execute(
                f"SELECT {columns} FROM {table} WHERE tenant_id = %s ORDER BY id",  # noqa: S608
                [tenant_id],
            )
            rows = c.fetchall()
            if rows:
                found[table] = rows
    return found


def _in_databases(sql: str) -> list[tuple]:
    """One statement as the owner of each dedicated database; the rows of all."""
    rows = []
    for name in (dedicated.NEAR, dedicated.FAR) if dedicated.ENABLED else ():
        with _owner(name) as conn, conn.cursor() as c:
            c.execute(sql)
            rows += (
                [(f"{name}:{row[0]}", *row[1:]) for row in c.fetchall()] if c.description else []
            )
    return rows


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


TRIGGERS_SQL = (
    "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
    "WHERE tgname LIKE 'ameide_move_%' ORDER BY 1, 2"
)


def triggers() -> list[tuple]:
    """Capture triggers left in `default` and (named `<database>:<table>`) the dedicated ones."""
    return owner_execute(TRIGGERS_SQL) + _in_databases(TRIGGERS_SQL)


def private_rows() -> tuple[int, int]:
    changes = owner_execute(
        "SELECT count(*) FROM ameide_private.placement_change "
        "WHERE to_regclass('ameide_private.placement_change') IS NOT NULL"
    )
    freezes = owner_execute(
        "SELECT count(*) FROM ameide_private.placement_freeze "
        "WHERE to_regclass('ameide_private.placement_freeze') IS NOT NULL"
    )
    changed, frozen = changes[0][0], freezes[0][0]
    for name in (dedicated.NEAR, dedicated.FAR) if dedicated.ENABLED else ():
        with _owner(name) as conn, conn.cursor() as c:
            c.execute("SELECT to_regclass('ameide_private.placement_change') IS NOT NULL")
            if c.fetchone()[0]:
                c.execute(
                    "SELECT (SELECT count(*) FROM ameide_private.placement_change), "
                    "(SELECT count(*) FROM ameide_private.placement_freeze)"
                )
                more = c.fetchone()
                changed, frozen = changed + more[0], frozen + more[1]
    return changed, frozen


def clean_up() -> None:
    for schema in MOVE_SCHEMAS:
        owner_execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    for table, name in owner_execute(TRIGGERS_SQL):
        owner_execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    owner_execute(
        "DO $$ BEGIN IF to_regclass('ameide_private.placement_change') IS NOT NULL THEN "
        "DELETE FROM ameide_private.placement_change; DELETE FROM ameide_private.placement_freeze; "
        "END IF; END $$"
    )
    for name in (dedicated.NEAR, dedicated.FAR) if dedicated.ENABLED else ():
        with _owner(name) as conn, conn.cursor() as c:
            c.execute(TRIGGERS_SQL)
            for table, trigger in c.fetchall():
                c.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
            c.execute(
                "DO $$ BEGIN IF to_regclass('ameide_private.placement_change') IS NOT NULL THEN "
                "DELETE FROM ameide_private.placement_change; "
                "DELETE FROM ameide_private.placement_freeze; END IF; END $$"
            )
