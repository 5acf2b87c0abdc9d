"""Where each table goes on Citus (tenants.citus.placement), and `tenants distribute` and the
Citus part of `tenants check` on plain PostgreSQL (refused, and nothing to report). The
cluster itself is exercised by `make test-citus` (docs/citus.md)."""

from __future__ import annotations

import pytest
from django.db import connection

from tenants.citus.distribute import foreign_keys, schema_tables
from tenants.citus.placement import (
    COORDINATOR,
    DISTRIBUTED,
    PRIVATE_TABLES,
    REFERENCE,
    keys_to_drop,
    table_plan,
)
from tenants.citus.verify import citus_findings
from tenants.lifecycle.tables import tenant_tables
from tests.tenants.cli_support import refused

pytestmark = pytest.mark.django_db


def _plan():
    with connection.cursor() as cursor:
        tables = schema_tables(cursor)
        keys = foreign_keys(cursor)
    plan = table_plan(tables=tables)
    return plan, {p.table: p for p in plan}, keys


def test_tenant_tables_are_distributed_and_colocated_with_the_first():
    plan, by_table, _ = _plan()
    # Memberships are read by the user table's policy: a reference table (docs/citus.md).
    ordered = [t.db_table for t in tenant_tables() if t.db_table != "accounts_membership"]
    assert [p.table for p in plan if p.kind == DISTRIBUTED] == ordered
    assert by_table["accounts_membership"].kind == REFERENCE
    assert "accounts_user" in by_table["accounts_membership"].reason
    assert by_table[ordered[0]].colocate_with == ""
    assert {by_table[t].colocate_with for t in ordered[1:]} == {ordered[0]}


def test_every_table_has_one_place_and_a_reason():
    plan, by_table, _ = _plan()
    with connection.cursor() as cursor:
        tables = schema_tables(cursor)
    assert set(tables) | set(PRIVATE_TABLES) == set(by_table)
    assert len(plan) == len(by_table)
    assert all(p.reason for p in plan)


def test_the_tenant_table_is_replicated_and_the_user_table_stays_for_its_subquery():
    _, by_table, _ = _plan()
    assert by_table["tenants_tenant"].kind == REFERENCE
    assert by_table["accounts_user"].kind == COORDINATOR
    assert "subquery" in by_table["accounts_user"].reason
    assert by_table["tenants_auditevent"].kind == COORDINATOR
    # The key is copied to each node as a plain table; the grants are replicated by Citus.
    assert by_table["ameide_private.scope_key"].kind == COORDINATOR
    assert by_table["ameide_private.breakglass_grant"].kind == REFERENCE


def test_keys_citus_cannot_keep_are_exactly_those_across_kinds():
    plan, _, keys = _plan()
    dropped = {(k.table, k.target) for k in keys_to_drop(plan=plan, keys=keys)}
    assert ("accounts_membership", "accounts_user") in dropped
    assert ("accounts_membership", "tenants_tenant") not in dropped
    assert ("workflows_workflow", "accounts_user") in dropped
    assert ("accounts_user", "tenants_tenant") in dropped
    assert ("accounts_identityprovidertenant", "tenants_tenant") in dropped
    # Kept: tenant tables to the tenant table, between tenant tables, and on the coordinator.
    assert ("workflows_workflow", "tenants_tenant") not in dropped
    assert ("workflows_workflowrun", "workflows_workflow") not in dropped
    assert ("accounts_user_groups", "accounts_user") not in dropped


@pytest.mark.django_db(databases=["default", "owner"])
def test_distribute_refuses_a_database_without_citus():
    refused("distribute", match="no Citus extension")


def test_check_has_nothing_to_say_about_citus_on_plain_postgresql():
    assert citus_findings(using="default") == ([], [])
