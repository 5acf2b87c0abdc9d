"""Red team across placements, as the runtime role: a tenant cannot reach another tenant's rows
in another placement by naming its schema, by setting search_path itself (for the
transaction or for the session), or by writing there; and it can create nothing anywhere."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from tenants.context import no_tenant, tenant_context
from tests.placement.support import path_of
from workflows.models import Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.every_placement(databases=False)]


def fetch(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def table_of(tenant, table: str = "workflows_workflow") -> str:
    schema = tenant.placement_name if tenant.placement == "schema" else "public"
    return f"{schema}.{table}"


@pytest.fixture
def pair(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        Workflow.objects.create(name="a-secret")
    with tenant_context(tenant_b):
        Workflow.objects.create(name="b-secret")
    return tenant_a, tenant_b


@pytest.mark.parametrize("order", ["a reads b", "b reads a"])
def test_naming_the_other_placement_reads_nothing(pair, order):
    me, other = pair if order == "a reads b" else pair[::-1]
    mine = f"{me.slug[0]}-secret"
    with tenant_context(me):
        # Both shared: the other's table is this tenant's own, and shows only its own row.
        assert {n for (n,) in fetch(f"SELECT name FROM {table_of(other)}")} <= {mine}
        assert fetch(
            f"SELECT count(*) FROM {table_of(other)} WHERE tenant_id = %s", [other.pk]
        ) == [(0,)]
        # Its own rows, by name and by the path it was given.
        assert fetch(f"SELECT name FROM {table_of(me)}") == [(mine,)]
        assert fetch("SELECT name FROM workflows_workflow") == [(mine,)]


@pytest.mark.parametrize("order", ["a reads b", "b reads a"])
def test_setting_search_path_itself_reads_nothing(pair, order):
    me, other = pair if order == "a reads b" else pair[::-1]
    mine = f"{me.slug[0]}-secret"
    with transaction.atomic(), tenant_context(me):
        # For the rest of its transaction, SQL may point itself elsewhere: RLS still decides.
        fetch(f"SET LOCAL search_path = {path_of(other)}")
        assert {n for (n,) in fetch("SELECT name FROM workflows_workflow")} <= {mine}
        assert fetch(
            "SELECT count(*) FROM workflows_workflow WHERE tenant_id = %s", [other.pk]
        ) == [(0,)]


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_a_session_search_path_does_not_outlive_its_transaction(pair):
    a, b = pair
    with tenant_context(b):
        fetch(f"SET search_path = {path_of(a)}")  # session-wide, in autocommit (as pooled)
        # The next transaction's prefix sets b's own path again.
        assert fetch("SELECT name FROM workflows_workflow") == [("b-secret",)]
        assert list(Workflow.objects.values_list("name", flat=True)) == ["b-secret"]
    with no_tenant():
        assert fetch("SELECT current_schemas(false)::text") == [("{public}",)]


@pytest.mark.parametrize("order", ["a writes b", "b writes a"])
def test_writing_a_row_of_the_other_tenant_into_its_placement_is_refused(pair, order):
    me, other = pair if order == "a writes b" else pair[::-1]
    with tenant_context(me):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            fetch(
                f"INSERT INTO {table_of(other)} (tenant_id, name, description, definition, "
                "status, created_at, updated_at) VALUES (%s, 'smuggled', '', '{}', 'draft', "
                "now(), now())",
                [other.pk],
            )
        where = f"WHERE tenant_id = {int(other.pk)} RETURNING id"
        assert fetch(f"UPDATE {table_of(other)} SET name = 'x' {where}") == []
        assert fetch(f"DELETE FROM {table_of(other)} {where}") == []
    with tenant_context(other):
        assert fetch("SELECT count(*) FROM workflows_workflow") == [(1,)]


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE {schema}.shadow (id int)",
        "CREATE VIEW {schema}.workflows_view AS SELECT 1",
        "ALTER TABLE {schema}.workflows_workflow NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS workflows_workflow_rls_isolation ON {schema}.workflows_workflow",
        "TRUNCATE {schema}.workflows_workflow",
        "INSERT INTO {schema}.django_migrations (app, name, applied) VALUES ('x', 'y', now())",
    ],
)
def test_the_runtime_role_changes_no_placement(pair, statement):
    a, _ = pair
    schema = a.placement_name if a.placement == "schema" else "public"
    with tenant_context(a), pytest.raises(DatabaseError), transaction.atomic():
        fetch(statement.format(schema=schema))


def test_the_routing_function_checks_a_dedicated_schemas_signature(pair):
    """Without a tenant's value it refuses. A forged value naming a tenant in a dedicated schema
    is refused too; one naming a shared tenant gets the home schema, where its policies then
    show nothing (the path names tables; the policies check the signature on every row)."""
    with no_tenant(), pytest.raises(DatabaseError, match="no signed tenant"), transaction.atomic():
        fetch("SELECT ameide_private.scope_search_path()")
    for tenant in pair:
        forged = f"t:{tenant.pk}:0:9999999999:{'0' * 64}"
        with no_tenant(), transaction.atomic():
            fetch("SELECT set_config('app.scope', %s, true)", [forged])
            if tenant.placement == "schema":
                with pytest.raises(DatabaseError, match="no signed tenant"), transaction.atomic():
                    fetch("SELECT ameide_private.scope_search_path()")
            else:
                assert fetch("SELECT ameide_private.scope_search_path()") == [('"public"',)]
                assert fetch(f"SELECT count(*) FROM {table_of(tenant)}") == [(0,)]


@pytest.mark.parametrize("order", ["a writes b", "b writes a"])
def test_a_tenant_cannot_put_even_its_own_rows_into_another_tenants_schema(pair, order):
    me, other = pair if order == "a writes b" else pair[::-1]
    insert = (
        "INSERT INTO {table} (tenant_id, name, description, definition, status, created_at, "
        "updated_at) VALUES (%s, 'misplaced', '', '{{}}', 'draft', now(), now())"
    )
    with tenant_context(me):
        if other.placement == "schema" and other.placement_name != me.placement_name:
            with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
                fetch(insert.format(table=table_of(other)), [me.pk])
        # Into its own placement, of course it can.
        fetch(insert.format(table=table_of(me)), [me.pk])
        assert fetch("SELECT count(*) FROM workflows_workflow WHERE name = 'misplaced'") == [(1,)]
