"""What a connection carries between transactions: nothing PostgreSQL accepts on a fresh or a
used one, and a session-level value that misbehaving SQL leaves behind is never accepted
(THREATS 2, 3, 9, 35). Committed data: each step is its own transaction, as on a persistent
connection serving request after request.

`ameide_private.scope_id('t')` is the tenant PostgreSQL's policies accept: the signed value of
`app.scope`, verified, or NULL."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from tenants.context import no_tenant, tenant_context
from tenants.exceptions import TenantNotSet
from tenants.models import Tenant
from tests.rls.support import COMMITTED, plain_connection, rows_by_tenant
from workflows.models import Workflow

pytestmark = COMMITTED

STATE = (
    "SELECT ameide_private.scope_id('t'), current_user, "
    "(SELECT count(*) FROM workflows_workflow), "
    "(SELECT array_agg(DISTINCT tenant_id) FROM workflows_workflow)"
)


def django_state() -> tuple:
    """(setting, role, visible rows, visible tenants) as a statement through Django sees them."""
    with connection.cursor() as cursor:
        cursor.execute(STATE)
        return cursor.fetchone()


def session_value() -> str | None:
    """The session-level value, read under the backend (no set_config in between)."""
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.scope', true)")
        value = cursor.fetchone()[0]
    connection.connection.rollback()  # in case autocommit is off; ends the read-only statement
    return value


def test_the_policies_show_nothing_for_null_and_for_empty_settings(two_tenants):
    """Straight at PostgreSQL as the runtime role, without the Django backend."""
    a = two_tenants["a"]
    with plain_connection() as conn:
        fresh = conn.execute(STATE).fetchone()
        assert fresh == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)
        with conn.transaction():
            # A plain id, and a value of the signed form with a made-up signature: nothing.
            conn.execute("SELECT set_config('app.scope', %s, true)", [str(a.pk)])
            assert conn.execute(STATE).fetchone()[2:] == (0, None)
            forged = f"t:{a.pk}:0:9999999999:{'0' * 64}"
            conn.execute("SELECT set_config('app.scope', %s, true)", [forged])
            assert conn.execute(STATE).fetchone()[2:] == (0, None)
        used = conn.execute(STATE).fetchone()
        assert used == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)


def test_through_django_a_fresh_and_a_used_connection_show_nothing(two_tenants):
    a = two_tenants["a"]
    connection.close()
    with no_tenant():
        assert django_state()[1:] == (settings.TENANCY_RUNTIME_ROLE, 0, None)
        with tenant_context(a):
            assert django_state() == (a.pk, settings.TENANCY_RUNTIME_ROLE, 2, [a.pk])
        assert django_state() == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)
        with transaction.atomic():
            assert django_state() == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)


def test_a_tenant_set_in_one_transaction_is_gone_in_the_next(two_tenants):
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(a), transaction.atomic():
        assert django_state()[3] == [a.pk]
    assert session_value() == ""  # set_config(..., true) ended with the transaction
    with tenant_context(b), transaction.atomic():
        assert django_state()[3] == [b.pk]
    with no_tenant():
        assert django_state()[2] == 0


def test_a_session_level_set_config_by_rogue_sql_does_not_leak(two_tenants):
    """set_config(..., false) DOES persist on the session (PostgreSQL semantics), here with B's
    genuine signed value copied from one of B's own transactions on this connection. The
    backend re-sends the scope with every statement outside a transaction and with the first one
    in each transaction, so the value is never what a later statement reads."""
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(b), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.scope')")
        b_value = cursor.fetchone()[0]
    with tenant_context(a), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM workflows_workflow")
        cursor.execute("SELECT set_config('app.scope', %s, false)", [b_value])
    # The rogue value is really there, at session level, after the commit ...
    assert session_value() == b_value
    # ... but a later statement with no tenant (autocommit or in a transaction) sees nothing,
    with no_tenant():
        assert django_state() == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)
        with transaction.atomic():
            assert django_state() == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)
        with pytest.raises(TenantNotSet):
            Workflow.objects.count()
    # ... and A's next transaction sees A.
    with tenant_context(a):
        assert django_state()[2:] == (2, [a.pk])
        with transaction.atomic():
            assert set(Workflow.objects.values_list("tenant_id", flat=True)) == {a.pk}

    # The same rogue call made outside any transaction.
    with no_tenant(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.scope', %s, false)", [b_value])
    assert session_value() == b_value
    with no_tenant():
        assert django_state() == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)


def test_a_session_level_set_role_does_not_outlive_its_transaction(two_tenants):
    a = two_tenants["a"]
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {settings.TENANCY_BREAKGLASS_ROLE}")
    with no_tenant():
        assert django_state() == (None, settings.TENANCY_RUNTIME_ROLE, 0, None)
    with tenant_context(a), transaction.atomic():
        assert django_state()[1:] == (settings.TENANCY_RUNTIME_ROLE, 2, [a.pk])


def test_a_cross_tenant_reference_is_refused_at_commit(two_tenants):
    """The composite key is DEFERRABLE: the violation surfaces at COMMIT, and nothing stays."""
    a, b1 = two_tenants["a"], two_tenants["b1"]
    before = rows_by_tenant("workflows_workflowrun")
    with (
        tenant_context(a),
        pytest.raises(IntegrityError, match="foreign key"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO workflows_workflowrun (tenant_id, workflow_id, status, input, "
            "output, created_at) VALUES (%s, %s, 'queued', '{}', '{}', now())",
            [a.pk, b1.pk],
        )
    assert rows_by_tenant("workflows_workflowrun") == before


def test_server_side_cursors_outside_a_transaction_carry_the_setting(two_tenants):
    """Named cursors cannot share a message with set_config: they get their own transaction,
    with the tenant, or with the global scope when there is none (even over a rogue session value)."""
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(b), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.scope')")
        b_value = cursor.fetchone()[0]
    with no_tenant(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.scope', %s, false)", [b_value])
    with tenant_context(a):
        assert {w.tenant_id for w in Workflow.objects.iterator(chunk_size=1)} == {a.pk}
    with no_tenant():
        with connection.chunked_cursor() as cursor:
            cursor.execute("SELECT tenant_id FROM workflows_workflow")
            assert cursor.fetchall() == []
        slugs = {t.slug for t in Tenant.objects.iterator(chunk_size=1)}
        assert slugs == {"alpha", "bravo"}  # global rows are unaffected
