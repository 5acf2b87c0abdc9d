"""The run worker as a real process (`manage.py runworker` against the test database): runs go
from queued to a final state in their own tenant only; tickets without a tenant, for a suspended
or deleted tenant, or naming another tenant's run are refused and audited; a worker killed
mid-run loses nothing and never shares a run with another worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rest_framework.test import APIClient

from tenants.context import no_tenant, tenant_context
from tenants.models import AuditEvent, Tenant
from tests import dedicated
from tests.rls.support import COMMITTED, ROOT, child_environment
from workflows import services
from workflows.models import RunTicket, Workflow, WorkflowRun

pytestmark = [COMMITTED, pytest.mark.slow]
WAIT_LIMIT_SECONDS = 60  # how long a test waits for an outcome before it fails (not a threshold)


def start_worker(*, drain: bool = False, **env: str) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "runworker", "--poll", "0.05"]
    if drain:
        command.append("--drain")
    environment = child_environment(**{"WORKER_LEASE_SECONDS": "30", **env})
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with process.stdout:
        return process.stdout.read()


def drain() -> str:
    """Run a worker until the queue is empty; its output, for failure messages."""
    process = start_worker(drain=True)
    try:
        process.wait(timeout=WAIT_LIMIT_SECONDS)
    finally:
        output = stop(process) if not process.stdout.closed else ""
    assert process.returncode == 0, output
    return output


def reload(tenant: Tenant, run: WorkflowRun) -> WorkflowRun:
    with tenant_context(tenant):
        return WorkflowRun.objects.get(pk=run.pk)


def wait_for(tenant: Tenant, run: WorkflowRun, *statuses: str, process=None) -> WorkflowRun:
    deadline = time.monotonic() + WAIT_LIMIT_SECONDS
    while (current := reload(tenant, run)).status not in statuses:
        if time.monotonic() > deadline:
            output = stop(process) if process else ""
            raise AssertionError(f"run stayed {current.status}: {current.log}\n{output}")
        time.sleep(0.05)
    return current


def workflow(tenant: Tenant, name: str, steps, **definition) -> Workflow:
    with tenant_context(tenant):
        return services.workflow_create(
            name=name, definition={"steps": steps, **definition}, status="active"
        )


def start(tenant: Tenant, flow: Workflow, **input) -> WorkflowRun:
    with tenant_context(tenant):
        return services.run_start(workflow=flow, input=input)


def test_a_run_created_through_the_api_goes_from_queued_to_succeeded(tenant_a, user_a):
    flow = workflow(
        tenant_a,
        "invoice",
        [
            "start",
            {"set": {"checked": True}},
            {
                "if": {"input": "amount", "gt": 100},
                "then": [{"set": {"route": "manual"}}],
                "else": [{"set": {"route": "auto"}}],
            },
            {"wait": 0.1},
        ],
    )
    with tenant_context(tenant_a):
        Workflow.objects.filter(pk=flow.pk).update(owner=user_a)
    client = APIClient()
    client.force_login(user_a)
    created = client.post(f"/api/workflows/{flow.pk}/runs/", {"input": {"amount": 500}}, "json")
    assert created.status_code == 201 and created.json()["status"] == "queued"

    drain()

    body = client.get(f"/api/runs/{created.json()['id']}/").json()
    assert body["status"] == "succeeded", body
    assert body["output"] == {"checked": True, "route": "manual"}
    assert body["started_at"] and body["finished_at"] and body["attempts"] == 1
    events = [(entry["step"], entry["event"]) for entry in body["log"]]
    assert events == [
        ("", "started"),
        ("steps[0]", "mark"),
        ("steps[1]", "set"),
        ("steps[2]", "branch"),
        ("steps[2].then[0]", "set"),
        ("steps[3]", "wait"),
        ("", "succeeded"),
    ]
    with no_tenant():
        assert not RunTicket.objects.exists()
        [event] = AuditEvent.objects.filter(action="run.succeeded")
    assert event.tenant_id_value == tenant_a.pk and event.details["id"] == body["id"]


def test_runs_of_two_tenants_interleaved_on_one_worker_each_see_their_own(tenant_a, tenant_b):
    flows = {
        tenant: workflow(
            tenant,
            f"flow-{tenant.slug}",
            [{"if": {"input": "who", "equals": tenant.slug}, "then": [{"set": {"mine": True}}]}],
        )
        for tenant in (tenant_a, tenant_b)
    }
    runs = []
    for index in range(6):
        tenant = (tenant_a, tenant_b)[index % 2]
        runs.append((tenant, start(tenant, flows[tenant], who=tenant.slug, index=index)))

    drain()

    for tenant, run in runs:
        done = reload(tenant, run)
        assert done.status == "succeeded" and done.output == {"mine": True}
        # The run's rows were written in its own tenant, whatever ran just before it.
        assert done.tenant_id == tenant.pk
    with no_tenant():
        finished = AuditEvent.objects.filter(action="run.succeeded").order_by("id")
        by_run = {event.details["id"]: event.tenant_id_value for event in finished}
    assert by_run == {run.pk: tenant.pk for tenant, run in runs}


@dedicated.NEEDED
@pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)
def test_runs_of_tenants_in_each_placement_on_one_worker_each_see_their_own():
    """A tenant in the shared tables, one in a dedicated database on this server and one on
    the other (tests/dedicated.py): the worker finds their tickets in `default` and runs each
    run where its tenant's rows are."""
    tenants = [
        dedicated.make_tenant(slug=slug, placement=placement)
        for slug, placement in (("shared", ""), ("near", dedicated.NEAR), ("far", dedicated.FAR))
    ]
    runs = []
    for tenant in tenants:
        flow = workflow(
            tenant,
            f"flow-{tenant.slug}",
            [{"if": {"input": "who", "equals": tenant.slug}, "then": [{"set": {"mine": True}}]}],
        )
        runs.append((tenant, start(tenant, flow, who=tenant.slug)))

    drain()

    for tenant, run in runs:
        done = reload(tenant, run)
        assert done.status == "succeeded" and done.output == {"mine": True}, done.log
        assert done._state.db == ("default" if tenant.slug == "shared" else f"placed_{tenant.slug}")
    with no_tenant():
        assert not RunTicket.objects.exists()


def refused_reasons() -> dict[int, str]:
    with no_tenant():
        events = AuditEvent.objects.filter(action="task.refused")
        return {event.details["run"]: event.reason for event in events}


def test_tickets_that_must_not_run_are_refused_and_audited(tenant_a, tenant_b):
    flow_a = workflow(tenant_a, "a", [{"set": {"ran": True}}])
    flow_b = workflow(tenant_b, "b", [{"set": {"ran": True}}])
    suspended = Tenant.objects.create(slug="sleepy", external_id="sleepy", name="Sleepy")
    deleted = Tenant.objects.create(slug="gone", external_id="gone", name="Gone")
    flow_s = workflow(suspended, "s", [{"set": {"ran": True}}])
    flow_d = workflow(deleted, "d", [{"set": {"ran": True}}])
    run_s, run_d = start(suspended, flow_s), start(deleted, flow_d)
    Tenant.objects.filter(pk=suspended.pk).update(status="suspended")
    Tenant.objects.filter(pk=deleted.pk).update(status="deleted")
    with tenant_context(tenant_a):
        orphan = WorkflowRun.objects.create(workflow=flow_a)
    with tenant_context(tenant_b):
        victim = WorkflowRun.objects.create(workflow=flow_b)
    with no_tenant():
        # What a bug or a forged enqueue could leave: no tenant, and A's ticket for B's run.
        RunTicket.objects.create(tenant_ref=None, run_ref=orphan.pk)
        RunTicket.objects.create(tenant_ref=tenant_a.pk, run_ref=victim.pk)

    drain()

    reasons = refused_reasons()
    assert reasons == {
        orphan.pk: "enqueued with no tenant",
        victim.pk: "its run is not a run of its tenant",
        run_s.pk: "its tenant is suspended",
        run_d.pk: "its tenant is deleted",
    }
    assert reload(tenant_a, orphan).status == "queued"
    assert reload(tenant_b, victim).status == "queued" and reload(tenant_b, victim).output == {}
    with tenant_context(suspended):
        assert WorkflowRun.objects.get(pk=run_s.pk).status == "queued"
    with no_tenant():
        assert not RunTicket.objects.exists()
        assert not AuditEvent.objects.filter(action="run.succeeded").exists()


def test_a_worker_killed_mid_run_is_replaced_and_the_run_is_neither_lost_nor_repeated(tenant_a):
    flow = workflow(tenant_a, "slow", [{"set": {"a": 1}}, {"wait": 300}, {"set": {"b": 2}}])
    run = start(tenant_a, flow)
    first = start_worker(WORKER_LEASE_SECONDS="1")
    try:
        wait_for(tenant_a, run, "running", process=first)
        deadline = time.monotonic() + WAIT_LIMIT_SECONDS
        while not any(entry["event"] == "wait" for entry in reload(tenant_a, run).log):
            assert time.monotonic() < deadline, "the run never reached its wait step"
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # no clean-up, no last write
        first.wait()
    finally:
        stop(first)
    with no_tenant():
        ticket = RunTicket.objects.get(run_ref=run.pk)
    assert ticket.state == "running" and ticket.attempt == 1  # the dead worker's claim

    second = start_worker(WORKER_LEASE_SECONDS="1")
    try:
        done = wait_for(tenant_a, run, "succeeded", "failed", process=second)
    finally:
        output = stop(second)
    assert done.status == "succeeded", (done.log, output)
    assert done.output == {"a": 1, "b": 2}
    assert done.attempts == 2
    events = [entry["event"] for entry in done.log]
    assert events.count("set") == 2  # a once (before the kill), b once (after): none repeated
    assert "worker lost; queued again" in events
    starts = [entry["attempt"] for entry in done.log if entry["event"] == "started"]
    assert starts == [1, 2]


def test_a_run_past_its_timeout_fails_and_frees_its_worker(tenant_a):
    slow = workflow(tenant_a, "slow", [{"wait": 300}], timeout_seconds=1)
    quick = workflow(tenant_a, "quick", [{"set": {"ok": True}}])
    stuck, after = start(tenant_a, slow), start(tenant_a, quick)
    process = start_worker()
    try:
        failed = wait_for(tenant_a, stuck, "failed", "succeeded", process=process)
        done = wait_for(tenant_a, after, "succeeded", "failed", process=process)
    finally:
        stop(process)
    assert failed.status == "failed" and failed.error == "timed out"
    assert done.status == "succeeded"


def test_cancel_approve_and_retry_through_the_api(tenant_a, user_a):
    flow = workflow(tenant_a, "gate", [{"approval": "manager"}, {"set": {"paid": True}}])
    with tenant_context(tenant_a):
        Workflow.objects.filter(pk=flow.pk).update(owner=user_a)
    client = APIClient()
    client.force_login(user_a)
    approved = client.post(f"/api/workflows/{flow.pk}/runs/", {}, "json").json()
    cancelled = client.post(f"/api/workflows/{flow.pk}/runs/", {}, "json").json()
    assert client.post(f"/api/runs/{cancelled['id']}/cancel/").json()["status"] == "cancelled"
    again = client.post(f"/api/runs/{cancelled['id']}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "run_state_conflict"

    drain()
    waiting = client.get(f"/api/runs/{approved['id']}/").json()
    assert waiting["status"] == "waiting" and waiting["log"][-1]["approval"] == "manager"
    wrong = client.post(f"/api/runs/{approved['id']}/approve/", {"approval": "cfo"}, "json")
    assert wrong.status_code == 409
    ok = client.post(f"/api/runs/{approved['id']}/approve/", {"approval": "manager"}, "json")
    assert ok.status_code == 200 and ok.json()["status"] == "queued"

    retried = client.post(f"/api/runs/{cancelled['id']}/retry/")
    assert retried.status_code == 201 and retried.json()["retry_of"] == cancelled["id"]
    drain()

    done = client.get(f"/api/runs/{approved['id']}/").json()
    assert done["status"] == "succeeded" and done["approvals"] == {"manager": "ann"}
    assert done["output"] == {"paid": True}
    # The retry is a new run that now waits for its own approval.
    assert client.get(f"/api/runs/{retried.json()['id']}/").json()["status"] == "waiting"
    with no_tenant():
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"workflow.run", "run.cancel", "run.approve", "run.retry", "run.succeeded"} <= actions


def test_make_run_starts_the_worker_next_to_the_server_and_stops_it_with_the_server():
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "PORT=18812"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "manage.py runworker & worker=$!" in recipe
    assert "runserver 127.0.0.1:18812" in recipe
    assert "trap 'kill $worker" in recipe
