"""How many times PostgreSQL checks the signed scope (`ameide_private.scope_id`) for one
statement, counted by PostgreSQL itself (`track_functions`): a shared tenant's read checks it
once, in the isolation policy; the routing function adds a check only for a tenant in a
dedicated schema, whose path it decides; the placement check of a write adds none for a tenant
placed where it writes (tenants.db.wall); a shared tenant's transaction does not call the
routing function at all (tenants.db.backend)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from tenants.context import no_tenant, tenant_context
from tests.rls.support import COMMITTED, database_name, owner_execute
from workflows.models import Workflow

pytestmark = [COMMITTED, pytest.mark.every_placement(databases=False)]

CALLS = "SELECT pg_stat_get_xact_function_calls(%s::regprocedure)"


@pytest.fixture
def counted():
    """The runtime role's next sessions count PL/pgSQL calls (a superuser's setting, so the
    owner sets it for the role in the test database); the test's connection is a new one."""
    role = connection.settings_dict["USER"]
    target = f'ROLE "{role}" IN DATABASE "{database_name()}"'
    owner_execute(f"ALTER {target} SET track_functions = 'pl'")
    connection.close()
    yield
    connection.close()
    owner_execute(f"ALTER {target} RESET track_functions")


def calls(function: str = "ameide_private.scope_id(text)") -> int:
    """This backend's calls of `function` not yet reported: they only grow inside a transaction
    (PostgreSQL reports them when the session is idle outside one)."""
    with connection.cursor() as cursor:
        cursor.execute(CALLS, [function])
        return cursor.fetchone()[0] or 0


def test_each_check_is_made_where_it_decides_something(counted, tenant_a):
    with transaction.atomic():
        with tenant_context(tenant_a):
            calls()  # the transaction's first prefix
        with no_tenant():
            before_routing = calls()  # the global scope's prefix routes nothing
        with tenant_context(tenant_a):
            after_routing = calls()  # the tenant's prefix again, and its routing
            assert Workflow.objects.count() == 0
            after_read = calls()
            placed = calls("ameide_private.scope_placed_in(text, text[])")
            Workflow.objects.create(name="counted")
            after_write = calls()
            assert calls("ameide_private.scope_placed_in(text, text[])") > placed
    routing = after_routing - before_routing
    assert routing == (1 if tenant_a.placement == "schema" else 0)
    assert after_read - after_routing == 1  # the isolation policy's InitPlan
    # The INSERT's isolation policy checks the new row (its InitPlan, which RETURNING's read
    # shares); the placement check adds none.
    assert after_write - after_read == 1


def test_a_shared_tenant_is_routed_without_asking_the_database(counted, tenant_a):
    """The backend routes a tenant whose row says the shared tables itself (tenants.db.backend);
    a schema tenant's path is read in the database, by the routing function, per transaction."""
    routing = "ameide_private.scope_search_path()"
    with transaction.atomic():
        with no_tenant():
            before = calls(routing)
        with tenant_context(tenant_a):  # the scope changes: the prefix is sent again
            assert Workflow.objects.count() == 0
        with no_tenant():
            after = calls(routing)
    assert after - before == (0 if tenant_a.placement == "shared" else 1)
