"""Break-glass at the database: unscoped() reaches every tenant through the break-glass role,
whose policy admits rows only while the transaction carries the signed scope of an open,
committed grant; the audit log cannot be changed by the app (THREATS 1, 32, 36)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import OperationalError, ProgrammingError, connection, transaction

from tenants.context import no_tenant, tenant_context, unscoped
from tests.rls.support import COMMITTED, owner_execute
from workflows.models import Workflow

pytestmark = COMMITTED

BREAKGLASS = settings.TENANCY_BREAKGLASS_ROLE
CITUS = settings.TENANCY_CITUS
# On Citus break-glass switches no role (docs/citus.md): the signed scope of an open grant is
# the whole condition there, and the break-glass role cannot reach the workers at all.
GLASS_USER = settings.TENANCY_RUNTIME_ROLE if CITUS else BREAKGLASS
SEEN = "SELECT current_user, count(*), count(DISTINCT tenant_id) FROM workflows_workflow"


def fetch(sql: str, params=None) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else ()


def unscoped_audit_rows() -> int:
    return owner_execute("SELECT count(*) FROM tenants_auditevent WHERE action = 'unscoped'")[0][0]


def test_unscoped_raw_sql_sees_both_tenants_and_leaves_an_audit_row(two_tenants):
    before = unscoped_audit_rows()
    with unscoped(reason="test: quarterly export"):
        assert fetch(SEEN) == (GLASS_USER, 4, 2)
        assert Workflow.objects.count() == 4
    assert unscoped_audit_rows() == before + 1
    assert owner_execute(
        "SELECT reason FROM tenants_auditevent WHERE action = 'unscoped' ORDER BY id DESC LIMIT 1"
    ) == [("test: quarterly export",)]
    with no_tenant():
        assert fetch(SEEN) == (settings.TENANCY_RUNTIME_ROLE, 0, 0)


def test_the_breakglass_role_without_an_audit_row_sees_nothing(two_tenants):
    if CITUS:
        # Citus connects to the workers as the statement's role, which cannot log in.
        with (
            no_tenant(),
            pytest.raises(OperationalError, match="not permitted to log in"),
            transaction.atomic(),
        ):
            fetch(f"SET LOCAL ROLE {BREAKGLASS}")
            fetch(SEEN)
        return
    with no_tenant(), transaction.atomic():
        fetch(f"SET LOCAL ROLE {BREAKGLASS}")
        assert fetch(SEEN) == (BREAKGLASS, 0, 0)
    # Under a tenant the isolation policy still applies to the role: only that tenant.
    with tenant_context(two_tenants["a"]), transaction.atomic():
        fetch(f"SET LOCAL ROLE {BREAKGLASS}")
        assert fetch(SEEN) == (BREAKGLASS, 2, 1)


def test_a_forged_breakglass_scope_does_not_open_the_glass(two_tenants):
    """The role alone admits nothing; nor does a scope naming a grant that was never opened."""
    forged = f"b:1:0:9999999999:{'0' * 64}"
    with no_tenant(), transaction.atomic():
        if not CITUS:
            fetch(f"SET LOCAL ROLE {BREAKGLASS}")
        fetch("SELECT set_config('app.scope', %s, true)", [forged])
        fetch(f"SET LOCAL app.scope = '{forged}'")  # what Citus passes on to the workers
        assert fetch(SEEN) == (GLASS_USER, 0, 0)


@pytest.mark.parametrize("role", ["runtime", "breakglass"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tenants_auditevent SET reason = 'rewritten'",
        "DELETE FROM tenants_auditevent",
        "TRUNCATE tenants_auditevent",
    ],
)
def test_the_app_cannot_change_or_remove_audit_rows(two_tenants, role, statement):
    with unscoped(reason="test: an audit row to protect"):
        pass
    before = owner_execute("SELECT id, reason FROM tenants_auditevent ORDER BY id")
    assert before
    with (
        no_tenant(),
        pytest.raises(ProgrammingError, match="permission denied"),
        transaction.atomic(),
    ):
        if role == "breakglass":
            fetch(f"SET LOCAL ROLE {BREAKGLASS}")
        fetch(statement)
    assert owner_execute("SELECT id, reason FROM tenants_auditevent ORDER BY id") == before
