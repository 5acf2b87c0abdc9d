"""The policy keeps the planner on the (tenant_id, ...) indexes: EXPLAIN of the workflows list
query, as the runtime role, shows an index condition on tenant_id (THREATS 11)."""

from __future__ import annotations

from django.db import connection

from tenants.context import tenant_context
from tests.rls.support import COMMITTED, owner_execute
from workflows import selectors

pytestmark = COMMITTED

ROWS_OF_A, ROWS_OF_B = 3000, 1000


def fill(tenant_id: int, count: int, prefix: str) -> None:
    owner_execute(
        "INSERT INTO workflows_workflow (tenant_id, name, description, definition, status, "
        "created_at, updated_at) SELECT %s, %s || g, '', '{}', 'draft', "
        "now() - g * interval '1 minute', now() FROM generate_series(1, %s) AS g",
        [tenant_id, prefix, count],
    )


def index_conditions(plan: str) -> list[str]:
    return [line.strip() for line in plan.splitlines() if "Index Cond" in line]


def test_the_list_query_uses_the_tenant_index(tenant_a, tenant_b):
    fill(tenant_a.pk, ROWS_OF_A, "a-")
    fill(tenant_b.pk, ROWS_OF_B, "b-")
    owner_execute("ANALYZE workflows_workflow")
    with tenant_context(tenant_a):
        # What the list endpoint runs: the selector, newest first, one page of 50.
        page = selectors.workflow_list().order_by("-created_at", "-id")[:50]
        plan = page.explain()
        assert len(list(page)) == 50
        with connection.cursor() as cursor:
            # RLS alone, no ORM filter: the policy's InitPlan is the index condition.
            cursor.execute(
                "EXPLAIN SELECT id FROM workflows_workflow ORDER BY created_at DESC, id DESC "
                "LIMIT 50"
            )
            rls_only = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] != owner_execute("SELECT current_user")[0][0]
    for text in (plan, rls_only):
        # (The owners' join may scan the small users table; the tenant table must not.)
        assert "Seq Scan on workflows_workflow" not in text, text
        assert any("tenant_id" in cond for cond in index_conditions(text)), text
        assert "workflow_tenant_newest" in text, text
