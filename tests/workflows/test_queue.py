"""The queue inside one process: fairness between tenants, fencing of lost claims, reaping of
runs past their timeout, and the worker's context reset between tasks (exceptions included)."""

from __future__ import annotations

import pytest
from django.db import connection

from tenants.context import current_scope, no_tenant, tenant_context
from tests.rls.support import COMMITTED, owner_execute
from workflows import services, worker
from workflows.models import RunTicket, Workflow, WorkflowRun

pytestmark = COMMITTED
BIG_QUEUE = 10_000


def flow(tenant, name="f", steps=None, **definition):
    with tenant_context(tenant):
        return services.workflow_create(
            name=name, definition={"steps": steps or [], **definition}, status="active"
        )


def start(tenant, workflow, **input):
    with tenant_context(tenant):
        return services.run_start(workflow=workflow, input=input)


def flood(tenant, count: int) -> None:
    """`count` queued tickets of one tenant, positions 1..count, as enqueue() numbers them
    (written as the owner: only the claim order matters here, not the runs)."""
    owner_execute(
        "INSERT INTO workflows_runticket (tenant_ref, run_ref, state, position, attempt, worker, "
        "created_at) SELECT %s, 1000000 + g, 'queued', g, 0, '', now() "
        "FROM generate_series(1, %s) g",
        [tenant.pk, count],
    )


def claim():
    with no_tenant():
        return worker._claim(name="test")


def test_a_small_tenant_is_not_stuck_behind_a_big_one(tenant_a, tenant_b):
    flood(tenant_a, BIG_QUEUE)
    for _ in range(3):  # the big tenant has been served for a while
        assert claim().tenant_ref == tenant_a.pk
    single = start(tenant_b, flow(tenant_b))

    claims = [claim() for _ in range(3)]

    slot = [c.run_ref for c in claims].index(single.pk)
    assert slot <= 1, [c.tenant_ref for c in claims]


def test_tenants_are_served_round_robin(tenant_a, tenant_b):
    flood(tenant_a, 50)
    workflow = flow(tenant_b)
    for _ in range(5):
        start(tenant_b, workflow)

    order = [claim().tenant_ref for _ in range(10)]

    assert order == [tenant_a.pk, tenant_b.pk] * 5 or order == [tenant_b.pk, tenant_a.pk] * 5


def test_a_lost_claim_cannot_write_after_its_run_was_retried(tenant_a):
    run = start(tenant_a, flow(tenant_a, steps=[{"set": {"x": 1}}]))
    lost = claim()
    with no_tenant():
        RunTicket.objects.filter(pk=lost.ticket_id).update(lease_until="2000-01-01T00:00Z")
        assert worker.reap() == 1
    again = claim()
    assert again.run_ref == run.pk and again.attempt == lost.attempt + 1

    with tenant_context(tenant_a), pytest.raises(worker._Lost):
        worker._hold(lost)  # the dead worker's next step: refused, nothing written
    with tenant_context(tenant_a):
        worker._hold(again)


def test_a_run_stuck_past_its_deadline_is_failed_and_its_ticket_freed(tenant_a):
    run = start(tenant_a, flow(tenant_a, steps=[{"wait": 5}]))
    claim()
    with no_tenant():
        RunTicket.objects.filter(run_ref=run.pk).update(
            lease_until="2000-01-01T00:00Z", deadline="2000-01-01T00:00Z"
        )
        assert worker.reap() == 1
        assert not RunTicket.objects.exists()
    with tenant_context(tenant_a):
        failed = WorkflowRun.objects.get(pk=run.pk)
    assert failed.status == "failed" and failed.error == "timed out"


def test_the_context_is_reset_between_tasks_even_after_an_exception(
    tenant_a, tenant_b, monkeypatch
):
    wa, wb = flow(tenant_a, steps=["x"]), flow(tenant_b, steps=["x"])
    runs = [start(tenant_a, wa), start(tenant_b, wb), start(tenant_a, wa)]
    seen = []
    real_apply = worker._apply

    def spy(run, instruction):
        visible = set(WorkflowRun.objects.values_list("pk", flat=True))
        workflows = set(Workflow.objects.values_list("tenant_id", flat=True))
        seen.append((current_scope().tenant.pk, run.pk, visible, workflows))
        if len(seen) == 1:
            raise RuntimeError("a bug in a step")
        return real_apply(run, instruction)

    monkeypatch.setattr(worker, "_apply", spy)
    for _ in runs:
        assert worker.run_once(name="test") is True
        assert current_scope().tenant is None  # nothing left behind, exception or not
    mine = {tenant_a.pk: {runs[0].pk, runs[2].pk}, tenant_b.pk: {runs[1].pk}}
    for tenant_pk, _run, visible, workflows in seen:
        assert visible == mine[tenant_pk] and workflows == {tenant_pk}
    assert [s[0] for s in seen] == [tenant_a.pk, tenant_b.pk, tenant_a.pk]


def test_a_turn_that_starts_inside_a_tenant_refuses_to_run(tenant_a):
    start(tenant_a, flow(tenant_a))
    with tenant_context(tenant_a), pytest.raises(worker.ContextLeak):
        worker.run_once(name="test")
    with no_tenant():
        assert RunTicket.objects.get().state == "queued"


def test_under_a_tenant_sql_sees_only_its_own_tickets(tenant_a, tenant_b):
    start(tenant_a, flow(tenant_a))
    start(tenant_b, flow(tenant_b))
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT tenant_ref FROM workflows_runticket")
        assert cursor.fetchall() == [(tenant_a.pk,)]
    with tenant_context(tenant_a), pytest.raises(Exception, match="row-level security"):
        RunTicket.objects.create(tenant_ref=tenant_b.pk, run_ref=424242)
