"""The second wall: with the ORM bypassed (cursor, raw(), RawSQL, extra()), PostgreSQL still
shows only the context's tenant, refuses writes of another tenant's rows, and the runtime role
cannot switch RLS off (THREATS 1, 2, 5, 8, 13). With A and B in the shared tables, in
dedicated databases on this server and on another one, and one of each (tests/dedicated.py):
each statement goes to the database that holds its table's rows for the context's tenant."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, ProgrammingError, connections, router, transaction
from django.db.models.expressions import RawSQL

from tenants.context import no_tenant, tenant_context
from tenants.db.catalog import tenant_models
from tenants.models import Placement, Tenant
from tests import dedicated
from tests.placement.support import rows_everywhere
from workflows.models import Workflow, WorkflowRun

pytestmark = [pytest.mark.django_db(databases=dedicated.DATABASES), pytest.mark.every_placement]

COUNT_PER_TENANT = "SELECT count(*) FROM workflows_workflow w WHERE w.tenant_id = tenants_tenant.id"


def alias(model=Workflow) -> str:
    """The database of `model`'s rows for the context's tenant (`default` with none)."""
    return router.db_for_read(model)


def fetch(sql: str, params=None, *, model=Workflow) -> list[tuple]:
    with connections[alias(model)].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def any_dedicated(*tenants) -> bool:
    return any(t.placement == Placement.DATABASE for t in tenants)


def names(sql: str = "SELECT name FROM workflows_workflow", params=None) -> set[str]:
    return {row[0] for row in fetch(sql, params)}


def everything(*tenants) -> dict:
    """Every workflow of every tenant, to prove nothing changed: with a tenant in a dedicated
    database (where unscoped() refuses), each of `tenants` under its own scope in its own
    database; else every placement's table, read the audited cross-tenant way, so a row that
    landed in another schema is a difference too."""
    if any_dedicated(*tenants):
        result: dict[int, set[str]] = {}
        for tenant in tenants:
            with tenant_context(tenant):
                for tenant_id, name in Workflow.objects.values_list("tenant_id", "name"):
                    result.setdefault(tenant_id, set()).add(name)
        return result
    return rows_everywhere("workflows_workflow", "id, name")


def test_a_raw_cursor_sees_only_the_context_tenant(two_tenants):
    with tenant_context(two_tenants["a"]):
        assert names() == {"alpha one", "shared name"}
        # Even a query that asks for B by id gets nothing: the policy filters first.
        assert (
            names("SELECT name FROM workflows_workflow WHERE tenant_id = %s", [two_tenants["b"].pk])
            == set()
        )
        assert fetch("SELECT count(*) FROM workflows_workflowrun")[0][0] == 1
    with tenant_context(two_tenants["b"]):
        assert names() == {"bravo one", "shared name"}


def test_model_raw_sees_only_the_context_tenant(two_tenants):
    with tenant_context(two_tenants["a"]):
        rows = Workflow.objects.raw("SELECT * FROM workflows_workflow ORDER BY name")
        assert [w.name for w in rows] == ["alpha one", "shared name"]
        assert {w.tenant_id for w in rows} == {two_tenants["a"].pk}


def test_rawsql_and_extra_on_a_global_model_count_only_the_context_tenant(two_tenants):
    """Under a tenant even the global tenant directory shows only that tenant's own row."""
    a, b = two_tenants["a"], two_tenants["b"]
    # The tenant directory is in `default`: a tenant in a dedicated database has no rows there.
    in_shared = {t.slug: 0 if any_dedicated(t) else 2 for t in (a, b)}
    with tenant_context(a):
        annotated = Tenant.objects.annotate(n=RawSQL(COUNT_PER_TENANT, []))
        assert {t.slug: t.n for t in annotated} == {"alpha": in_shared["alpha"]}
        extra = Tenant.objects.extra(select={"n": COUNT_PER_TENANT})  # noqa: S610 (the threat)
        assert {t.slug: t.n for t in extra} == {"alpha": in_shared["alpha"]}
    with tenant_context(b):
        annotated = Tenant.objects.annotate(n=RawSQL(COUNT_PER_TENANT, []))
        assert {t.slug: t.n for t in annotated} == {"bravo": in_shared["bravo"]}


def test_no_tenant_means_no_rows_and_no_accepted_tenant(two_tenants):
    with no_tenant():
        assert names() == set()
        assert fetch("SELECT ameide_private.scope_id('t')")[0][0] is None
    # After a tenant's statement in the same transaction: still nothing without a tenant.
    with tenant_context(two_tenants["a"]):
        assert len(names()) == 2
    with no_tenant():
        assert names() == set()


def test_inserting_a_row_of_b_as_a_is_refused(two_tenants):
    a, b = two_tenants["a"], two_tenants["b"]
    before = everything(two_tenants["a"], two_tenants["b"])
    with (
        tenant_context(a),
        pytest.raises(ProgrammingError, match="row-level security"),
        transaction.atomic(using=alias()),
    ):
        fetch(
            "INSERT INTO workflows_workflow (tenant_id, name, description, definition, "
            "status, created_at, updated_at) VALUES (%s, 'smuggled', '', '{}', 'draft', "
            "now(), now()) RETURNING id",
            [b.pk],
        )
    assert everything(two_tenants["a"], two_tenants["b"]) == before


def test_updating_or_deleting_a_row_of_b_as_a_touches_nothing(two_tenants):
    a, b1 = two_tenants["a"], two_tenants["b1"]
    before = everything(two_tenants["a"], two_tenants["b"])
    with tenant_context(a), connections[alias()].cursor() as cursor:
        cursor.execute("UPDATE workflows_workflow SET name = 'taken' WHERE id = %s", [b1.pk])
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM workflows_workflowrun WHERE tenant_id = %s", [b1.tenant_id])
        assert cursor.rowcount == 0
        cursor.execute("DELETE FROM workflows_workflow WHERE id = %s", [b1.pk])
        assert cursor.rowcount == 0
    assert everything(two_tenants["a"], two_tenants["b"]) == before


def test_moving_a_row_of_a_to_b_by_raw_update_is_refused(two_tenants):
    a, b, a1 = two_tenants["a"], two_tenants["b"], two_tenants["a1"]
    before = everything(two_tenants["a"], two_tenants["b"])
    with (
        tenant_context(a),
        pytest.raises(ProgrammingError, match="row-level security"),
        transaction.atomic(using=alias()),
    ):
        fetch(
            "UPDATE workflows_workflow SET tenant_id = %s WHERE id = %s RETURNING id",
            [b.pk, a1.pk],
        )
    assert everything(two_tenants["a"], two_tenants["b"]) == before


def test_a_run_of_a_cannot_point_at_a_workflow_of_b(two_tenants):
    """The composite key refuses what RLS cannot see: FK checks bypass policies."""
    a, b1 = two_tenants["a"], two_tenants["b1"]
    with (
        tenant_context(a),
        pytest.raises(IntegrityError, match="foreign key"),
        transaction.atomic(using=alias()),
    ):
        fetch("SET CONSTRAINTS ALL IMMEDIATE")
        fetch(
            "INSERT INTO workflows_workflowrun (tenant_id, workflow_id, status, input, "
            "output, created_at) VALUES (%s, %s, 'queued', '{}', '{}', now()) RETURNING id",
            [a.pk, b1.pk],
        )
    runs = 0
    for tenant in (two_tenants["a"], two_tenants["b"]):
        with tenant_context(tenant):
            runs += WorkflowRun.objects.count()
    assert runs == 2


def test_the_same_name_in_two_tenants_is_no_side_channel(two_tenants):
    """Unique keys lead with tenant_id: B's names neither collide with nor reveal A's."""
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(a):
        fetch(
            "INSERT INTO workflows_workflow (tenant_id, name, description, definition, status, "
            "created_at, updated_at) VALUES (%s, 'bravo one', '', '{}', 'draft', now(), now()) "
            "RETURNING id",
            [a.pk],
        )
        with (
            pytest.raises(IntegrityError, match="workflow_tenant_name_uniq"),
            transaction.atomic(using=alias()),
        ):
            Workflow.objects.create(name="alpha one")
    with tenant_context(b):
        assert names() == {"bravo one", "shared name"}


def test_every_unique_index_of_a_tenant_table_leads_with_tenant_id_except_the_key():
    """A global UNIQUE would tell A that B holds a value; only the surrogate key is global."""
    tables = [m._meta.db_table for m in tenant_models()]
    rows = fetch(
        "SELECT c.relname, i.relname, a.attname FROM pg_index x "
        "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0] "
        "WHERE x.indisunique AND NOT x.indisprimary AND c.relname = ANY(%s)",
        [tables],
    )
    assert rows, "expected the (tenant_id, ...) unique keys"
    assert [r for r in rows if r[2] != "tenant_id"] == []


def _table_owner() -> str:
    return fetch("SELECT tableowner FROM pg_tables WHERE tablename = 'workflows_workflow'")[0][0]


# Ways out of RLS that need a privilege the runtime role must not have, per tenant table ...
TABLE_ESCAPES = {
    "truncate": "TRUNCATE {table} CASCADE",
    "disable rls": "ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    "no force rls": "ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
    "drop policy": "DROP POLICY {table}_rls_isolation ON {table}",
    "permissive policy": "CREATE POLICY sneaky ON {table} USING (true)",
    "owner view": "CREATE VIEW leak AS SELECT * FROM {table}",
    "definer function": (
        "CREATE FUNCTION leak() RETURNS bigint LANGUAGE sql SECURITY DEFINER "
        "AS 'SELECT count(*) FROM {table}'"
    ),
}
# ... and for the whole database.
ROLE_ESCAPES = {
    "set role owner": 'SET ROLE "{owner}"',
    "session authorization": 'SET SESSION AUTHORIZATION "{owner}"',
    "bypassrls": "ALTER ROLE CURRENT_USER BYPASSRLS",
    "superuser": "ALTER ROLE CURRENT_USER SUPERUSER",
}
ESCAPES = [
    *[
        (name, sql, m._meta.db_table)
        for name, sql in TABLE_ESCAPES.items()
        for m in tenant_models()
    ],
    *[(name, sql, "workflows_workflow") for name, sql in ROLE_ESCAPES.items()],
]


@pytest.mark.parametrize(
    "escape,sql,table", ESCAPES, ids=[f"{name}-{table}" for name, _, table in ESCAPES]
)
def test_the_runtime_role_cannot_switch_rls_off(two_tenants, escape, sql, table):
    assert fetch("SELECT current_user")[0][0] == settings.TENANCY_RUNTIME_ROLE
    sql = sql.format(table=table, owner=_table_owner())
    model = next(m for m in apps.get_models() if m._meta.db_table == table)
    with (
        tenant_context(two_tenants["a"]),
        pytest.raises(ProgrammingError) as refused,
        transaction.atomic(using=alias(model)),
    ):
        # On the database that holds the table's rows of A (memberships stay in `default`).
        fetch(sql, model=model)
    # 42501 insufficient_privilege ("permission denied", "must be owner", "must be superuser")
    assert refused.value.__cause__.sqlstate == "42501", refused.value
    with tenant_context(two_tenants["a"]):
        assert names() == {"alpha one", "shared name"}
        assert fetch("SELECT current_user")[0][0] == settings.TENANCY_RUNTIME_ROLE
    assert sum(len(v) for v in everything(two_tenants["a"], two_tenants["b"]).values()) == 4


# Where the scope setting may be named: the wall's SQL, the backend that sets it, the audit that
# checks it, and the migration that encrypts secrets in the global scope. bench/ is a
# measurement harness, not the app.
SETTING_OWNERS = {
    "tenants/db/wall.py",
    "tenants/db/backend/base.py",
    "tenants/db/catalog.py",
    "tenants/placement/paths.py",
    "accounts/migrations/0004_encrypt_provider_secrets.py",
}


@pytest.mark.django_db(databases=[])
def test_only_the_tenancy_modules_name_the_setting():
    """THREATS 9: no other code sets (or reads) the scope."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("accounts", "ameide", "tenants", "workflows"):
        for path in (root / package).rglob("*.py"):
            text = path.read_text()
            if "app.scope" in text or "set_config(" in text:
                offenders.append(str(path.relative_to(root)))
    assert sorted(set(offenders) - SETTING_OWNERS) == []
