"""The wall in dedicated databases, on this server (`near`) and on the other one (`far`): raw SQL
as the runtime role on each server shows a tenant its own rows only, wherever they live, and
nothing of a tenant placed elsewhere; a plain connection there without the application's
signed scope (none, forged, another backend's) reads nothing (tests/dedicated.py, issue 12).

The tenants: A in `far`, B in the shared tables, C in `near`, with the same workflow names.
"""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connections, transaction

from tenants.context import no_tenant, tenant_context
from tenants.db.signing import DatabaseScope, scope_value
from tests import dedicated
from workflows.models import Workflow, WorkflowRun

pytestmark = dedicated.NEEDED
NEAR, FAR = (f"placed_{name}" for name in (dedicated.NEAR, dedicated.FAR))
ALIASES = [DEFAULT_DB_ALIAS, NEAR, FAR]
HOME = {"a": FAR, "b": DEFAULT_DB_ALIAS, "c": NEAR}


def fetch(alias: str, sql: str, params=None) -> list[tuple]:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def names(alias: str) -> set[str]:
    return {row[0] for row in fetch(alias, "SELECT name FROM workflows_workflow")}


def _world() -> dict:
    world = {
        "a": dedicated.make_tenant(slug="alpha", placement=dedicated.FAR),
        "b": dedicated.make_tenant(slug="bravo", placement=""),
        "c": dedicated.make_tenant(slug="charlie", placement=dedicated.NEAR),
    }
    for side in ("a", "b", "c"):
        with tenant_context(world[side]):
            first = Workflow.objects.create(name=f"{side} one")
            Workflow.objects.create(name="shared name")
            WorkflowRun.objects.create(workflow=first)
            world[f"{side}1"] = first
    return world


@pytest.fixture
def world(db):
    return _world()


@pytest.mark.django_db(databases=dedicated.DATABASES)
@pytest.mark.parametrize("side", ["a", "b", "c"])
def test_raw_sql_on_every_server_shows_a_tenant_only_its_own_rows(world, side):
    tenant = world[side]
    with tenant_context(tenant):
        for alias in ALIASES:
            expected = {f"{side} one", "shared name"} if alias == HOME[side] else set()
            assert names(alias) == expected, alias
            # Asking for the others by id gets nothing either: the policy filters first.
            for other in {"a", "b", "c"} - {side}:
                asked = fetch(
                    alias,
                    "SELECT name FROM workflows_workflow WHERE tenant_id = %s",
                    [world[other].pk],
                )
                assert asked == [], (alias, other)
            runs = fetch(alias, "SELECT count(*) FROM workflows_workflowrun")[0][0]
            assert runs == (1 if alias == HOME[side] else 0), alias


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_the_orm_reads_and_writes_each_tenant_where_it_is_placed(world):
    for side in ("a", "b", "c"):
        with tenant_context(world[side]):
            assert set(Workflow.objects.values_list("name", flat=True)) == {
                f"{side} one",
                "shared name",
            }
            assert Workflow.objects.first()._state.db == HOME[side]
            assert Workflow.objects.using(DEFAULT_DB_ALIAS).exists() == (HOME[side] == "default")


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_no_tenant_reads_nothing_and_verifies_no_scope_on_any_server(world):
    with no_tenant():
        for alias in ALIASES:
            assert names(alias) == set(), alias
            assert fetch(alias, "SELECT ameide_private.scope_id('t')")[0][0] is None


@pytest.mark.django_db(databases=dedicated.DATABASES)
@pytest.mark.parametrize("alias", [NEAR, FAR])
def test_a_row_of_another_tenant_cannot_be_written_into_a_dedicated_database(world, alias):
    owner = "c" if alias == NEAR else "a"
    for intruder in {"a", "b", "c"} - {owner}:
        with (
            tenant_context(world[owner]),
            pytest.raises(ProgrammingError, match="row-level security"),
            transaction.atomic(using=alias),
        ):
            fetch(
                alias,
                "INSERT INTO workflows_workflow (tenant_id, name, description, definition, "
                "status, created_at, updated_at) VALUES (%s, 'smuggled', '', '{}', 'draft', "
                "now(), now()) RETURNING id",
                [world[intruder].pk],
            )
        # And another tenant, in its own context, reaches nothing of the owner's there.
        with tenant_context(world[intruder]), connections[alias].cursor() as cursor:
            cursor.execute("UPDATE workflows_workflow SET name = 'taken'")
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM workflows_workflowrun")
            assert cursor.rowcount == 0
    with tenant_context(world[owner]):
        assert names(alias) == {f"{owner} one", "shared name"}


@pytest.mark.django_db(databases=dedicated.DATABASES)
@pytest.mark.parametrize("alias", [NEAR, FAR])
def test_the_runtime_role_cannot_switch_rls_off_there(world, alias):
    with tenant_context(world["b"]):
        for sql in (
            "ALTER TABLE workflows_workflow DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE workflows_workflow NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY workflows_workflow_rls_isolation ON workflows_workflow",
            "SELECT inner_pad FROM ameide_private.scope_key",
        ):
            with pytest.raises(ProgrammingError), transaction.atomic(using=alias):
                fetch(alias, sql)


# --- committed rows, plain connections as the runtime role on each server ------------------


def _runtime_kwargs(alias: str) -> dict:
    """libpq parameters of `alias` (a unix socket's directory among them), as its runtime role."""
    params = connections[alias].get_connection_params()
    keys = ("dbname", "host", "port", "user", "password")
    return {key: params[key] for key in keys if params.get(key)}


@pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)
@pytest.mark.parametrize("alias", [NEAR, FAR])
def test_a_plain_runtime_connection_needs_the_applications_signature(alias):
    world = _world()
    owner = world["c" if alias == NEAR else "a"]
    with psycopg.connect(**_runtime_kwargs(alias), autocommit=True) as conn:
        count = "SELECT count(*) FROM workflows_workflow"
        assert conn.execute("SELECT current_user").fetchone()[0] == settings.TENANCY_RUNTIME_ROLE
        assert conn.execute(count).fetchone()[0] == 0  # no scope at all
        forged = f"t:{owner.pk}:0:9999999999:{'0' * 64}"
        conn.execute("SELECT set_config('app.scope', %s, false)", [forged])
        assert conn.execute(count).fetchone()[0] == 0
        pid = conn.info.backend_pid
        elsewhere = scope_value(DatabaseScope("t", owner.pk), backend_pid=pid + 1, ttl_seconds=60)
        conn.execute("SELECT set_config('app.scope', %s, false)", [elsewhere[0]])
        assert conn.execute(count).fetchone()[0] == 0  # signed, for another backend
        genuine = scope_value(DatabaseScope("t", owner.pk), backend_pid=pid, ttl_seconds=60)
        conn.execute("SELECT set_config('app.scope', %s, false)", [genuine[0]])
        # The key and the verifier are installed there: the application's own value works,
        # and shows that tenant's rows only.
        rows = conn.execute("SELECT DISTINCT tenant_id FROM workflows_workflow").fetchall()
        assert rows == [(owner.pk,)]
        for other in ("a", "b", "c"):
            if world[other] is owner:
                continue
            genuine = scope_value(
                DatabaseScope("t", world[other].pk), backend_pid=pid, ttl_seconds=60
            )
            conn.execute("SELECT set_config('app.scope', %s, false)", [genuine[0]])
            assert conn.execute(count).fetchone()[0] == 0
