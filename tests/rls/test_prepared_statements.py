"""Prepared statements (the scope's prefix and repeated queries, psycopg's prepare_threshold):
PostgreSQL plans them once per connection, and a plan never carries a tenant: executed under
another tenant's scope, the same prepared statement returns that tenant's rows, from that
tenant's placement."""

from __future__ import annotations

import pytest
from django.db import connections

from tenants.context import no_tenant, tenant_context
from tests.rls.support import COMMITTED

# In every placement: a plan prepared under one tenant's search path (a dedicated schema, or
# public) and executed under another's is planned again by PostgreSQL (its plan cache keys on
# search_path), so it reads the other tenant's tables, never the first one's.
pytestmark = [COMMITTED, pytest.mark.every_placement(databases=False)]

RAW_COUNT = "SELECT count(*) FROM workflows_workflow"  # no tenant filter: RLS alone decides


@pytest.fixture
def persistent():
    """A runtime connection of its own in autocommit, as a gunicorn thread keeps it."""
    wrapper = connections.create_connection("default")
    yield wrapper
    wrapper.close()


def _count(wrapper, sql: str = RAW_COUNT) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def _prepared(wrapper) -> list[str]:
    with no_tenant(), wrapper.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_repeated_statements_and_the_prefix_are_prepared(two_tenants, tenant_a, persistent):
    with tenant_context(tenant_a):
        counts = {_count(persistent) for _ in range(8)}
    assert counts == {2}
    statements = _prepared(persistent)
    assert RAW_COUNT in statements
    assert any("set_config('app.scope'" in s for s in statements)


def test_a_prepared_plan_follows_the_scope_of_each_execution(
    two_tenants, tenant_a, tenant_b, persistent
):
    with tenant_context(tenant_a):
        for _ in range(8):
            assert _count(persistent) == 2
    assert RAW_COUNT in _prepared(persistent)
    with tenant_context(tenant_b):
        assert _count(persistent) == 2  # B's own two workflows, not A's
        b_names = set(connections[persistent.alias].settings_dict and _names(persistent))
    assert b_names == {"bravo one", "shared name"}
    with no_tenant():
        assert _count(persistent) == 0  # the global scope sees no tenant rows
    with tenant_context(tenant_a):  # and back: A's own rows again, from A's placement
        assert set(_names(persistent)) == {"alpha one", "shared name"}
    assert RAW_COUNT in _prepared(persistent)


def _names(wrapper) -> list[str]:
    with wrapper.cursor() as cursor:
        for _ in range(6):
            cursor.execute("SELECT name FROM workflows_workflow ORDER BY name")
        return [row[0] for row in cursor.fetchall()]


def test_a_failing_statement_does_not_break_the_next_ones(two_tenants, tenant_a, persistent):
    from django.db import ProgrammingError

    with tenant_context(tenant_a):
        for _ in range(8):
            _count(persistent)
        with pytest.raises(ProgrammingError):
            _count(persistent, "SELECT count(*) FROM no_such_table")
        assert [_count(persistent) for _ in range(8)] == [2] * 8


def test_every_execution_is_planned_for_its_own_tenant(persistent):
    """A generic plan assumes an average tenant: the prefix asks for a custom plan for every
    statement after it, so a large tenant's query keeps its own row estimate
    (docs/benchmarks.md)."""
    persistent.ensure_connection()
    with no_tenant(), persistent.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone()[0] == "force_custom_plan"


def test_the_query_is_planned_each_time_and_the_prefix_once(two_tenants, tenant_a, persistent):
    """The statement behind the prefix is planned at every execution, for its tenant; the
    prefix, which reads no table, keeps one generic plan (it was planned anew each time)."""
    query = "SELECT count(*) FROM workflows_workflow WHERE name <> %s"
    with tenant_context(tenant_a):
        for _ in range(20):
            assert _count_with(persistent, query) == 2
    with no_tenant(), persistent.cursor() as cursor:
        cursor.execute(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s OR statement LIKE %s",
            ["SELECT count(*) FROM workflows_workflow WHERE name <> $1", "%'app.scope'%"],
        )
        plans = {statement: (generic, custom) for statement, generic, custom in cursor}
    queries = [plan for statement, plan in plans.items() if "app.scope" not in statement]
    prefixes = [plan for statement, plan in plans.items() if "app.scope" in statement]
    assert queries and all(generic == 0 and custom >= 15 for generic, custom in queries)
    assert prefixes and any(generic >= 5 for generic, _ in prefixes)


def _count_with(wrapper, sql: str) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute(sql, ["no such name"])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(
    "function",
    [
        "scope_search_path()",
        "scope_member_ids()",
        "scope_placed_in(text)",
        "scope_placed_in(text, text[])",
        "grant_open(bigint)",
    ],
)
def test_the_walls_lookups_keep_one_plan(persistent, function):
    """The runtime connection's custom plans would reach into the wall's functions too and plan
    their one-row lookups again at every call (on every statement, for the search path): each
    function that looks a row up by key asks for a generic plan (tenants.db.wall)."""
    persistent.ensure_connection()
    with no_tenant(), persistent.cursor() as cursor:
        cursor.execute(
            "SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure",
            [f"ameide_private.{function}"],
        )
        assert "plan_cache_mode=force_generic_plan" in cursor.fetchone()[0]
