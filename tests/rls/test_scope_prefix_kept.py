"""The backend keeps the prefix it made for the next statement of the same context
(tenants.db.backend, `scope_prefix`): each statement still carries exactly its own context,
whatever came before it on the connection. Autocommit, so every statement sends a prefix, as
the API's reads do."""

from __future__ import annotations

import pytest
from django.db import connection

from tenants.actor import acting
from tenants.context import database_scope, no_tenant, tenant_context
from tenants.db.backend import base
from tenants.db.signing import tenant_label
from tenants.db.timeouts import statement_timeout
from tenants.placement.kinds import Placement
from tenants.placement.paths import FIXED_SEARCH_PATH, TENANT_SEARCH_PATH
from tests.rls.support import COMMITTED

pytestmark = COMMITTED

CARRIED = (
    "SELECT ameide_private.scope_id('t'), current_setting('app.scope'), "
    "current_setting('application_name'), current_setting('statement_timeout'), "
    "(SELECT count(*) FROM workflows_workflow)"
)


def carried() -> tuple:
    """(tenant PostgreSQL accepts, signed value, label, timeout, visible workflows)."""
    with connection.cursor() as cursor:
        cursor.execute(CARRIED)
        return cursor.fetchone()


def test_statements_alternating_tenants_each_carry_their_own(two_tenants):
    a, b = two_tenants["a"], two_tenants["b"]
    seen = []
    for tenant in (a, a, b, b, a, b, a):
        with tenant_context(tenant):
            scope_id, _, label, _, visible = carried()
        seen.append((scope_id, label.split()[0], visible))
    expected = {t.pk: (t.pk, f"t={tenant_label(t.pk)}", 2) for t in (a, b)}
    assert seen == [expected[t.pk] for t in (a, a, b, b, a, b, a)]
    with no_tenant():
        assert carried()[0] is None


def test_a_new_request_and_its_timeout_go_out_with_the_next_statement(tenant_a):
    with tenant_context(tenant_a):
        with acting(name="t", request_id="first"):
            first = carried()
            assert carried() == first
        with acting(name="t", request_id="second"):
            assert carried()[2].endswith(" r=second")
            with statement_timeout(tenant_id=tenant_a.pk, milliseconds=1234):
                assert carried()[3] == "1234ms"
            assert carried()[3] != "1234ms"


def test_a_new_server_session_gets_a_value_signed_for_its_pid(tenant_a):
    with tenant_context(tenant_a):
        before = carried()
        connection.close()
        after = carried()
    assert before[0] == after[0] == tenant_a.pk  # not the old session's value, refused
    assert before[1] != after[1]


def test_a_value_near_its_expiry_is_signed_again(tenant_a, monkeypatch):
    with tenant_context(tenant_a):
        before = carried()
        expires = float(before[1].split(":")[3])
        later = expires - 1  # past half its life: the backend signs anew
        monkeypatch.setattr(base.time, "time", lambda: later)
        after = carried()
    assert after[0] == tenant_a.pk
    assert after[1] != before[1]


def test_a_changed_setting_goes_out_with_the_next_statement(tenant_a, settings):
    with tenant_context(tenant_a):
        carried()
        settings.TENANCY_STATEMENT_TIMEOUT_MS = 4321
        assert carried()[3] == "4321ms"


@pytest.mark.parametrize("placement", [Placement.SCHEMA])
def test_the_tenant_s_loaded_placement_changes_the_search_path(tenant_a, placement):
    with tenant_context(tenant_a):
        scope = database_scope()
        connection.ensure_connection()
        shared_prefix, _ = connection.scope_prefix(scope)
        tenant_a.placement = placement  # as a row loaded after a move would say
        moved_prefix, _ = connection.scope_prefix(scope)
    assert shared_prefix.endswith(FIXED_SEARCH_PATH)
    assert moved_prefix.endswith(TENANT_SEARCH_PATH)
