"""Two writers at a quota's last free slot: the second waits for the first's transaction and
is refused, so exactly one succeeds (the quota is checked in the write's transaction)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from limits.errors import QuotaExceeded
from tenants.context import tenant_context
from tests.limits.conftest import set_limits
from tests.limits.support import Background, wait_for
from tests.rls.support import COMMITTED, owner_execute, rows_by_tenant
from workflows.services import workflow_create

pytestmark = COMMITTED


def _waiting_for_a_lock() -> int:
    rows = owner_execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return rows[0][0]


def test_two_writers_at_the_last_slot_exactly_one_succeeds(tenant_a):
    set_limits(tenant_a, rows_per_model=1)
    first_wrote = threading.Event()
    commit_first = threading.Event()

    def first():
        try:
            with tenant_context(tenant_a), transaction.atomic():
                workflow_create(name="first")
                first_wrote.set()
                commit_first.wait(timeout=60)  # hold the transaction open, its row uncommitted
            return "created"
        finally:
            connection.close()

    def second():
        first_wrote.wait(timeout=60)
        try:
            with tenant_context(tenant_a), transaction.atomic():
                workflow_create(name="second")
            return "created"
        except QuotaExceeded as exc:
            return exc.limit
        finally:
            connection.close()

    one, two = Background(first), Background(second)
    one.start()
    two.start()
    # The second writer counts only after the first has committed: it waits for the lock.
    wait_for(lambda: _waiting_for_a_lock() == 1, what="the second writer to wait")
    commit_first.set()
    one.join(timeout=60)
    two.join(timeout=60)
    assert (one.error, two.error) == (None, None)
    assert (one.result, two.result) == ("created", "rows_per_model")
    assert rows_by_tenant() == {tenant_a.pk: 1}


def test_the_quota_check_refuses_to_run_outside_a_transaction(tenant_a):
    from limits.quotas import enforce_quotas
    from workflows.models import Workflow

    with tenant_context(tenant_a), pytest.raises(RuntimeError, match="inside the write"):
        enforce_quotas(model=Workflow)
