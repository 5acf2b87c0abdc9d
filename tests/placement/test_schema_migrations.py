"""`migrate` brings every dedicated schema to the code's state, one by one, reports each, can be
run again after a failure to finish, and `tenants check` reports a schema that lags."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from tenants.models import Tenant
from tenants.placement.schemas import migrate_schema, pinned_connection, schema_findings
from tests import dedicated
from tests.rls.support import owner_execute

# Committed (migrate and `tenants check` use their own connections), and `migrate` goes on to
# the dedicated databases of the session.
pytestmark = pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)

SCHEMAS = ("pt_lag_one", "pt_lag_two")
# A tenant-table migration (reversible: a key swap), the one before it, and how many of the
# workflows app's migrations follow that one (each recorded in the schema, even one that only
# touches global tables and so changes nothing there).
LAST = ("workflows", "0003_tenant_primary_keys")
BEFORE_LAST = ("workflows", "0002_background_runs")
TO_APPLY = 2


@pytest.fixture
def lagging():
    """Two schema tenants, their schemas migrated and then one migration rolled back."""
    for index, schema in enumerate(SCHEMAS):
        Tenant.objects.create(
            slug=f"lag-{index}",
            external_id=f"lag-{index}",
            name=schema,
            placement="schema",
            placement_name=schema,
        )
        migrate_schema(schema, using="owner")
        with pinned_connection(schema, using="owner") as alias:
            MigrationExecutor(connections[alias]).migrate([BEFORE_LAST])
    yield SCHEMAS
    for schema in SCHEMAS:
        owner_execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def applied(schema: str) -> bool:
    return bool(
        owner_execute(
            f"SELECT 1 FROM {schema}.django_migrations WHERE app = %s AND name = %s", list(LAST)
        )
    )


def check_findings() -> list[str]:
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("tenants", "check", "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())["findings"]


def test_a_lagging_schema_is_reported_and_migrate_catches_it_up(lagging):
    assert not applied(SCHEMAS[0]) and not applied(SCHEMAS[1])
    findings = schema_findings(using="owner")
    assert [f for f in findings if "lags" in f] == [
        f"dedicated schema {s} lags: {TO_APPLY} migrations to apply (first workflows.0003_tenant_primary_keys; "
        "run migrate)"
        for s in SCHEMAS
    ]
    assert any("pt_lag_one lags" in f for f in check_findings())

    out = io.StringIO()
    call_command("migrate", stdout=out, verbosity=1)
    text = out.getvalue()
    assert "Dedicated schema 1/2: pt_lag_one" in text
    assert f"pt_lag_one: 1/{TO_APPLY} workflows.0003_tenant_primary_keys" in text
    assert "Dedicated schema 2/2: pt_lag_two" in text
    assert applied(SCHEMAS[0]) and applied(SCHEMAS[1])
    assert schema_findings(using="owner") == []
    # Nothing left to do: a second run applies nothing.
    out = io.StringIO()
    call_command("migrate", stdout=out, verbosity=1)
    assert "pt_lag_one: up to date" in out.getvalue()
    assert "pt_lag_two: up to date" in out.getvalue()


def test_a_failed_schema_stops_migrate_and_a_rerun_finishes(lagging, monkeypatch):
    real = MigrationExecutor.apply_migration

    def failing(self, state, migration, *args, **kwargs):
        if (
            self.connection.alias.endswith(SCHEMAS[1])
            and (migration.app_label, migration.name) == LAST
        ):
            raise RuntimeError("disk full (simulated)")
        return real(self, state, migration, *args, **kwargs)

    monkeypatch.setattr(MigrationExecutor, "apply_migration", failing)
    with pytest.raises(
        CommandError, match="pt_lag_two failed: disk full .* run `manage.py migrate` again"
    ):
        call_command("migrate", stdout=io.StringIO(), verbosity=1)
    assert applied(SCHEMAS[0]) and not applied(SCHEMAS[1])  # the one before it is done
    assert [f for f in schema_findings(using="owner") if "lags" in f] == [
        f"dedicated schema {SCHEMAS[1]} lags: {TO_APPLY} migrations to apply "
        "(first workflows.0003_tenant_primary_keys; run migrate)"
    ]
    monkeypatch.setattr(MigrationExecutor, "apply_migration", real)
    call_command("migrate", stdout=io.StringIO(), verbosity=1)
    assert applied(SCHEMAS[1])
    assert schema_findings(using="owner") == []


def test_a_missing_schema_is_a_finding():
    Tenant.objects.create(
        slug="ghost",
        external_id="ghost",
        name="Ghost",
        placement="schema",
        placement_name="pt_never_made",
    )
    assert schema_findings(using="owner") == [
        "dedicated schema pt_never_made does not exist (run migrate)"
    ]


def test_a_schema_table_without_forced_row_security_is_a_finding(lagging):
    call_command("migrate", stdout=io.StringIO(), verbosity=0)
    owner_execute(f"ALTER TABLE {SCHEMAS[0]}.workflows_workflow NO FORCE ROW LEVEL SECURITY")
    assert schema_findings(using="owner") == [
        f"{SCHEMAS[0]}.workflows_workflow: row level security is not ENABLEd and FORCEd"
    ]


def test_only_tenant_tables_are_in_a_schema(lagging):
    tables = {
        name
        for (name,) in owner_execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [SCHEMAS[0]]
        )
    }
    from tenants.db.catalog import tenant_models

    assert tables == {m._meta.db_table for m in tenant_models()} | {"django_migrations"}
    # Owned by the owner; the runtime role may not create anything in it.
    owner = owner_execute("SELECT current_user")[0][0]
    assert owner_execute(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = %s", [SCHEMAS[0]]
    ) == [(owner,)]
