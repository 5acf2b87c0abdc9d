"""Red team on the shared tables, as the runtime role: a tenant placed in a dedicated schema or
database cannot write even its own rows into the shared tables by naming `public.<table>` (the
restrictive placement policy, tenants.constraints.RowLevelSecurity.placement_policy); a shared
tenant and break-glass still write there, a database tenant its memberships (they stay in the
primary database); the policy is one InitPlan per statement; a refused tenant whose move froze
the shared tables is told to retry; `tenants check` names a table without the policy."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, OperationalError, connection, connections, transaction

from accounts.models import User
from tenants.context import tenant_context, unscoped
from tenants.db import wall
from tenants.db.catalog import audit_database
from tenants.models import Tenant
from tenants.placement import capture
from tenants.placement.schemas import schema_findings
from tests import dedicated
from tests.rls.support import COMMITTED

pytestmark = pytest.mark.django_db(databases=[*dedicated.DATABASES, "owner"])

# tenant_a placed away from the shared tables, tenant_b in them (tests/conftest.py).
ELSEWHERE = [
    pytest.param(("schema", "shared"), id="schema"),
    pytest.param((dedicated.FAR, "shared"), id="far", marks=dedicated.NEEDED),
    pytest.param((dedicated.NEAR, "shared"), id="near", marks=dedicated.NEEDED),
]
EVERYWHERE = [pytest.param(("shared", "shared"), id="shared"), *ELSEWHERE]
REFUSED = "row-level security"
INSERT = (
    "INSERT INTO public.workflows_workflow (tenant_id, name, description, definition, status, "
    "created_at, updated_at) VALUES (%s, %s, '', '{}', 'draft', now(), now()) RETURNING id"
)
UPDATE = "UPDATE public.workflows_workflow SET name = %s WHERE tenant_id = %s RETURNING id"
INSERT_MEMBER = (
    "INSERT INTO public.accounts_membership (tenant_id, user_id, role, created_at) "
    "VALUES (%s, %s, 'member', now()) RETURNING id"
)


def fetch(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def shared_rows(tenant) -> list[tuple]:
    """The tenant's rows in public.workflows_workflow, whatever its placement (raw SQL under
    break-glass reads the shared tables)."""
    with unscoped(reason="test: the shared table's rows"):
        return fetch(
            "SELECT name FROM public.workflows_workflow WHERE tenant_id = %s ORDER BY id",
            [tenant.pk],
        )


@pytest.mark.parametrize("placements", ELSEWHERE, indirect=True)
def test_a_tenant_placed_elsewhere_cannot_insert_its_own_rows_into_the_shared_table(tenant_a):
    with tenant_context(tenant_a):
        with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
            fetch(INSERT, [tenant_a.pk, "smuggled"])
        # Nor by pointing its own search path at the shared tables.
        with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
            fetch("SET LOCAL search_path = public")
            fetch(INSERT.replace("public.", ""), [tenant_a.pk, "smuggled"])
    assert shared_rows(tenant_a) == []


@pytest.mark.parametrize("placements", ELSEWHERE, indirect=True)
def test_a_tenant_placed_elsewhere_cannot_update_its_rows_in_the_shared_table(tenant_a):
    # A row of it left in the shared table (planted by break-glass, which writes anywhere).
    with unscoped(reason="test: a misplaced row"):
        fetch(INSERT, [tenant_a.pk, "misplaced"])
    with tenant_context(tenant_a):
        with pytest.raises(DatabaseError, match=REFUSED), transaction.atomic():
            fetch(UPDATE, ["rewritten", tenant_a.pk])
        # Reads and deletes are the isolation policy's alone: it sees and may remove its row.
        with transaction.atomic():
            assert fetch("SELECT name FROM public.workflows_workflow") == [("misplaced",)]
            assert len(fetch("DELETE FROM public.workflows_workflow RETURNING id")) == 1
            transaction.set_rollback(True)
    assert shared_rows(tenant_a) == [("misplaced",)]


@pytest.mark.parametrize("placements", [ELSEWHERE[0]], indirect=True)
def test_a_schema_tenant_cannot_add_members_to_the_shared_membership_table(tenant_a):
    """A membership in public's table would make the user visible to the tenant (the user
    table's policy reads it)."""
    user = User.objects.create_user(username="stranger", password="pw")
    with (
        tenant_context(tenant_a),
        pytest.raises(DatabaseError, match=REFUSED),
        transaction.atomic(),
    ):
        fetch(INSERT_MEMBER, [tenant_a.pk, user.pk])


@pytest.mark.parametrize("placements", ELSEWHERE[1:], indirect=True)
def test_a_database_tenant_still_writes_its_memberships_in_the_primary_database(tenant_a):
    user = User.objects.create_user(username="member", password="pw")
    with tenant_context(tenant_a), transaction.atomic():
        (row,) = fetch(INSERT_MEMBER, [tenant_a.pk, user.pk])
        assert fetch(
            "UPDATE public.accounts_membership SET role = 'admin' WHERE id = %s RETURNING role",
            [row[0]],
        ) == [("admin",)]


def test_a_shared_tenant_still_writes_the_shared_tables(tenant_b):
    user = User.objects.create_user(username="member", password="pw")
    with tenant_context(tenant_b):
        with transaction.atomic():
            fetch(INSERT, [tenant_b.pk, "own"])
            fetch(INSERT_MEMBER, [tenant_b.pk, user.pk])
        assert len(fetch(UPDATE, ["renamed", tenant_b.pk])) == 1
    assert shared_rows(tenant_b) == [("renamed",)]


@pytest.mark.parametrize("placements", EVERYWHERE, indirect=True)
def test_break_glass_still_writes_rows_of_any_tenant_into_the_shared_tables(tenant_a):
    """As a move into the shared tables and an import do (tenants.placement.rows)."""
    with unscoped(reason="test: break-glass writes"):
        fetch(INSERT, [tenant_a.pk, "by break-glass"])
        assert len(fetch(UPDATE, ["updated by break-glass", tenant_a.pk])) == 1
    assert shared_rows(tenant_a) == [("updated by break-glass",)]


def test_the_check_is_one_initplan_per_statement(tenant_b):
    """Evaluated once for a statement of many rows, never per row."""
    with tenant_context(tenant_b), transaction.atomic():
        plan = "\n".join(
            row
            for (row,) in fetch(
                "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                "INSERT INTO public.workflows_workflow (tenant_id, name, description, "
                "definition, status, created_at, updated_at) SELECT %s, 'many ' || g, '', "
                "'{}', 'draft', now(), now() FROM generate_series(1, 20) g",
                [tenant_b.pk],
            )
        )
        transaction.set_rollback(True)
    lines = plan.splitlines()
    calls = [i for i, line in enumerate(lines) if "scope_placed_in(" in line]
    assert calls, plan
    for i in calls:
        # The call's own node (the line above it) is an InitPlan run once.
        node = next(line for line in reversed(lines[:i]) if "->" in line or "InitPlan" in line)
        assert "loops=1" in node, plan
    assert any("InitPlan" in line for line in lines), plan


@COMMITTED
@pytest.mark.parametrize("placements", [ELSEWHERE[0]], indirect=True)
def test_a_refused_write_of_a_tenant_moving_out_of_the_shared_tables_is_told_to_retry(tenant_a):
    """A transaction that resolved its path to the shared tables before its tenant's switch to
    a schema writes after it while the source is frozen: the freeze's error (the API's 503
    with Retry-After), not a policy violation (the capture trigger runs after the check)."""
    owner = connections["owner"]
    capture.ensure_objects(using="owner")
    with owner.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {wall.PRIVATE}.{wall.FREEZE_TABLE} (tenant_id, schema_name) "
            "VALUES (%s, 'public')",
            [tenant_a.pk],
        )
    try:
        with tenant_context(tenant_a):
            with pytest.raises(OperationalError) as refused, transaction.atomic():
                fetch(INSERT, [tenant_a.pk, "after the switch"])
            assert capture.is_frozen_error(refused.value)
    finally:
        with owner.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {wall.PRIVATE}.{wall.FREEZE_TABLE} WHERE tenant_id = %s",
                [tenant_a.pk],
            )


def test_the_freeze_the_check_reads_is_the_capture_s():
    assert wall.FROZEN_SQLSTATE == capture.FROZEN_SQLSTATE
    assert any(
        f"TABLE IF NOT EXISTS {wall.PRIVATE}.{wall.FREEZE_TABLE} (" in statement
        for statement in capture.OBJECTS_SQL
    )


def as_owner(sql: str) -> None:
    with connections["owner"].cursor() as cursor:
        cursor.execute(sql)


def test_tenants_check_names_a_shared_table_without_the_policy():
    assert audit_database(using="owner") == []
    as_owner(f"DROP POLICY {wall.PLACEMENT_POLICY} ON workflows_workflow")
    assert audit_database(using="owner") == [
        f"workflows_workflow: no placement policy {wall.PLACEMENT_POLICY} (run migrate)"
    ]


def test_tenants_check_names_a_policy_that_admits_other_placements():
    as_owner(
        f"ALTER POLICY {wall.PLACEMENT_POLICY} ON workflows_workflow WITH CHECK "
        f"({wall.placement_check('public', placements=('shared', 'database'))})"
    )
    assert audit_database(using="owner") == [
        f"workflows_workflow: policy {wall.PLACEMENT_POLICY} does not admit only the tenants "
        "placed here"
    ]


def test_tenants_check_names_a_permissive_placement_policy():
    as_owner(f"DROP POLICY {wall.PLACEMENT_POLICY} ON accounts_membership")
    as_owner(
        f"CREATE POLICY {wall.PLACEMENT_POLICY} ON accounts_membership USING (true) "
        f"WITH CHECK ({wall.placement_check('public', placements=('shared', 'database'))})"
    )
    findings = audit_database(using="owner")
    assert f"accounts_membership: policy {wall.PLACEMENT_POLICY} is not RESTRICTIVE" in findings


def test_tenants_check_names_a_dedicated_schema_table_without_the_policy(placement_schemas):
    schema = placement_schemas[0]
    # On the owner's connection (this test's transaction there), where the check reads.
    Tenant.objects.using("owner").create(
        slug="alpha", external_id="alpha", name="Alpha", placement="schema", placement_name=schema
    )
    assert schema_findings(using="owner") == []
    as_owner(f'DROP POLICY {wall.PLACEMENT_POLICY} ON "{schema}".workflows_workflow')
    assert schema_findings(using="owner") == [
        f"{schema}.workflows_workflow: no placement policy {wall.PLACEMENT_POLICY} (run migrate)"
    ]
