"""A tenant in a dedicated schema: its rows land there, its transactions resolve tables there,
global tables stay in public, and a new placement holds from the next transaction."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tenants.context import tenant_context
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def placements():
    return ("schema", "shared")


def _count(sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_rows_of_a_schema_tenant_land_in_its_schema(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        Workflow.objects.create(name="in the schema")
        assert _count("SELECT count(*) FROM pt_alpha.workflows_workflow") == 1
        assert _count("SELECT count(*) FROM public.workflows_workflow") == 0
        assert list(Workflow.objects.values_list("name", flat=True)) == ["in the schema"]
    with tenant_context(tenant_b):
        Workflow.objects.create(name="shared")
        assert _count("SELECT count(*) FROM public.workflows_workflow") == 1
        assert list(Workflow.objects.values_list("name", flat=True)) == ["shared"]


def test_the_search_path_is_per_transaction(tenant_a, tenant_b):
    def path() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_schemas(false)::text")
            return cursor.fetchone()[0]

    with tenant_context(tenant_a):
        assert path() == "{pt_alpha,public}"
    with tenant_context(tenant_b):
        assert path() == "{public}"
    assert path() == "{public}"
    with transaction.atomic(), tenant_context(tenant_a):
        assert path() == "{pt_alpha,public}"
        with tenant_context(tenant_b):
            assert path() == "{public}"  # a scope change inside a transaction re-routes too
        assert path() == "{pt_alpha,public}"


def test_global_tables_resolve_to_public(tenant_a):
    def schema_of(table: str) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::regclass::oid::regclass::text", [table])
            cursor.execute(
                "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = %s::regclass",
                [table],
            )
            return cursor.fetchone()[0]

    with tenant_context(tenant_a):
        assert schema_of("tenants_tenant") == "public"
        assert schema_of("accounts_user") == "public"
        assert schema_of("tenants_auditevent") == "public"
        assert schema_of("workflows_workflow") == "pt_alpha"
        assert schema_of("accounts_membership") == "pt_alpha"


def test_members_of_a_schema_tenant_from_elsewhere_are_visible_under_it(tenant_a, tenant_b):
    """The user table's policy finds memberships in the tenant's dedicated schema too."""
    from accounts.models import Membership, User

    guest = User.objects.create_user(username="guest", password="pw", home_tenant=tenant_b)
    User.objects.create_user(username="stranger", password="pw", home_tenant=tenant_b)
    with tenant_context(tenant_a):
        assert _usernames() == set()
        Membership.objects.create(user=guest, role="member")
        assert _usernames() == {"guest"}
        assert list(User.objects.values_list("username", flat=True)) == ["guest"]
    with tenant_context(tenant_b):
        assert _usernames() == {"guest", "stranger"}


def _usernames() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT username FROM accounts_user")
        return {row[0] for row in cursor.fetchall()}


def test_usage_of_every_tenant_counts_rows_in_dedicated_schemas(tenant_a, tenant_b):
    from tenants.lifecycle.usage import tenant_usage

    for tenant, n in ((tenant_a, 3), (tenant_b, 2)):
        with tenant_context(tenant):
            for i in range(n):
                Workflow.objects.create(name=f"w{i}")
    rows = {u.slug: u.tables["workflows.workflow"]["rows"] for u in tenant_usage()}
    assert rows == {"alpha": 3, "bravo": 2}
    assert tenant_usage(tenant=tenant_a)[0].tables["workflows.workflow"]["rows"] == 3
