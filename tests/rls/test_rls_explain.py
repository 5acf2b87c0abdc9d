"""The policies keep the planner on the (tenant_id, ...) indexes: EXPLAIN of the workflows list
query, as the runtime role, shows an index condition on tenant_id (THREATS 11); the users'
policy probes one membership per user row read, whatever the tenant's member count, and not at
all in the global scope."""

from __future__ import annotations

from django.db import connection

from tenants.context import no_tenant, tenant_context
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


MEMBERS_OF_A = 400


def add_users(prefix: str, count: int, *, home: int | None) -> None:
    owner_execute(
        "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, "
        "email, is_staff, is_active, date_joined, issuer, subject, home_tenant_id, "
        "awaiting_first_sign_in) SELECT '!', false, %s || g, '', '', '', false, true, "
        "now(), '', '', %s, false FROM generate_series(1, %s) AS g",
        [prefix, home, count],
    )


def test_a_users_row_costs_one_membership_probe_not_a_hash_of_every_member(tenant_a, tenant_b):
    # A's workflows belong to someone whose home is B and who is a member of A, as a user of
    # several tenants is: the policy's membership test decides whether A sees the owner.
    add_users("member-", MEMBERS_OF_A, home=tenant_b.pk)
    owner_execute(
        "INSERT INTO accounts_membership (tenant_id, user_id, role, created_at) "
        "SELECT %s, id, 'member', now() FROM accounts_user WHERE username LIKE 'member-%%'",
        [tenant_a.pk],
    )
    fill(tenant_a.pk, 200, "a-")
    owner_execute(
        "UPDATE workflows_workflow SET owner_id = (SELECT id FROM accounts_user "
        "WHERE username = 'member-1') WHERE tenant_id = %s",
        [tenant_a.pk],
    )
    for table in ("accounts_user", "accounts_membership", "workflows_workflow"):
        owner_execute(f"ANALYZE {table}")
    with tenant_context(tenant_a):
        page = selectors.workflow_list().order_by("-created_at", "-id")[:50]
        plan = page.explain()
        assert [w.owner.username for w in page] == ["member-1"] * 50
    # PostgreSQL cannot know the signed tenant's member count (a parameter): left to itself,
    # it hashes all of them in every statement that reads a user (docs/benchmarks.md, 2m).
    assert "hashed SubPlan" not in plan, plan
    assert any("user_id = accounts_user.id" in c for c in index_conditions(plan)), plan


def test_in_the_global_scope_a_users_scan_probes_no_membership(tenant_a, tenant_b):
    add_users("someone-", 20, home=None)
    with no_tenant(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) SELECT count(*) FROM accounts_user")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SELECT count(*) FROM accounts_user")
        assert cursor.fetchone()[0] >= 20
    # The global scope's test comes first (tenants.db.wall.global_predicate): the per-row
    # membership probe of the tenant's test never runs.
    memberships = [line for line in plan.splitlines() if "accounts_membership" in line]
    assert memberships, plan
    assert all("never executed" in line for line in memberships), plan
