"""Pair 8: background runs. Runs executed per second with 1,000 tenants queued against one
tenant queued (the queue should stay flat), and a small tenant's run behind 10,000 queued runs
of another tenant against an empty queue (fairness)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from django.db import connections

from bench.dataset import Dataset
from bench.measure import Check, Row, Target, interleave
from tenants.context import tenant_context
from tenants.models import Tenant
from workflows import services, worker
from workflows.models import Workflow, WorkflowRun

TENANTS = 1_000
QUEUED = 1_000  # runs queued in each round of the throughput sides
EXECUTED = 200  # of which the worker executes (and the clock measures) this many
FLOOD = 10_000
DEFINITION = {"steps": ["bench", {"set": {"done": True}}]}
MARK = {"bench": True}  # the input of every run the bench makes, so that it removes only those
NAME = "bench worker"


@dataclass(frozen=True)
class WorkerPlan:
    rounds: int


def _owner(sql: str, params=None) -> list[tuple]:
    with connections["owner"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _workflows(count: int) -> list[tuple[int, int]]:
    """(tenant id, workflow id): one workflow of each of `count` tenants, given a definition
    in the step language (the dataset's definitions are not programs)."""
    rows = _owner(
        "SELECT DISTINCT ON (tenant_id) tenant_id, id FROM workflows_workflow "
        "ORDER BY tenant_id, id LIMIT %s",
        [count],
    )
    _owner(
        "UPDATE workflows_workflow SET definition = %s::jsonb WHERE id = ANY(%s)",
        [json.dumps(DEFINITION), [w for _, w in rows]],
    )
    return rows


def _queue(pairs: list[tuple[int, int]], per_pair: int) -> None:
    """`per_pair` queued runs of each (tenant, workflow), with tickets numbered as enqueue()
    numbers them (written as the owner in one statement: only the execution is measured)."""
    tenants = [t for t, _ in pairs for _ in range(per_pair)]
    workflows = [w for _, w in pairs for _ in range(per_pair)]
    _owner(
        "WITH r AS (INSERT INTO workflows_workflowrun (tenant_id, workflow_id, status, input, "
        "output, error, step, log, approvals, attempts, cancel_requested, created_at) "
        "SELECT t, w, 'queued', %s::jsonb, '{}', '', 0, '[]', '{}', 0, false, now() "
        "FROM unnest(%s::bigint[], %s::bigint[]) AS u(t, w) RETURNING id, tenant_id) "
        "INSERT INTO workflows_runticket (tenant_ref, run_ref, state, position, attempt, worker, "
        "created_at) SELECT tenant_id, id, 'queued', "
        "row_number() OVER (PARTITION BY tenant_id ORDER BY id), 0, '', now() FROM r",
        [json.dumps(MARK), tenants, workflows],
    )


def _clear() -> None:
    """Drop what a round left: tickets, and the runs the bench made (audit rows stay)."""
    _owner("DELETE FROM workflows_runticket")
    _owner("DELETE FROM workflows_workflowrun WHERE input = %s::jsonb", [json.dumps(MARK)])


def _seconds_per_run(pairs: list[tuple[int, int]], per_pair: int) -> float:
    _clear()
    _queue(pairs, per_pair)
    start = time.perf_counter()
    for _ in range(EXECUTED):
        worker.run_once(name=NAME)
    elapsed = time.perf_counter() - start
    _clear()
    return elapsed / EXECUTED


def _small_tenant_wait(big: tuple[int, int] | None, small: tuple[int, int]) -> tuple[float, int]:
    """Seconds from enqueueing the small tenant's run to its end, with the big tenant's
    10,000 runs queued first (or nothing, the baseline), and the worker turns it took."""
    _clear()
    if big is not None:
        _queue([big], FLOOD)
        worker.run_once(name=NAME)  # the big tenant is being served already
    tenant = Tenant.objects.get(pk=small[0])
    start = time.perf_counter()
    with tenant_context(tenant):
        run = services.run_start(workflow=Workflow.objects.get(pk=small[1]), input=MARK)
    slots = 0
    while True:
        worker.run_once(name=NAME)
        slots += 1
        with tenant_context(tenant):
            if WorkflowRun.objects.get(pk=run.pk).status in WorkflowRun.FINISHED:
                break
    elapsed = time.perf_counter() - start
    _clear()
    return elapsed, slots


def compare(*, dataset: Dataset, plan: WorkerPlan) -> list[Row | Check]:
    del dataset  # the main dataset's tenants and workflows are used as they are
    pairs = _workflows(TENANTS)
    one = [pairs[0]]
    flat = interleave(
        {
            "1,000 tenants": lambda: _seconds_per_run(pairs, QUEUED // TENANTS),
            "1 tenant": lambda: _seconds_per_run(one, QUEUED),
        },
        rounds=plan.rounds,
    )
    slots_seen = []

    def behind_flood() -> float:
        seconds, slots = _small_tenant_wait(pairs[0], pairs[1])
        slots_seen.append(slots)
        return seconds

    fair = interleave(
        {
            "behind 10,000": behind_flood,
            "empty queue": lambda: _small_tenant_wait(None, pairs[1])[0],
        },
        rounds=plan.rounds,
    )
    return [
        Row(
            pair="8",
            title=f"run executed ({QUEUED:,} queued; one worker)",
            ours_label="1,000 tenants",
            base_label="1 tenant",
            unit="ms",
            ours=flat["1,000 tenants"],
            base=flat["1 tenant"],
            target=Target(high=1.5),
            note="seconds per run of `runworker`'s loop (claim, admit, execute two steps, "
            "finish with its audit row); runs/s = 1 / that",
        ),
        Row(
            pair="8",
            title="small tenant's run, enqueue to end",
            ours_label="behind 10,000",
            base_label="empty queue",
            unit="ms",
            ours=fair["behind 10,000"],
            base=fair["empty queue"],
            target=Target(high=3.0),
        ),
        Check(
            pair="8",
            title="worker turns until the small tenant's run ended (behind 10,000)",
            observed=str(max(slots_seen)),
            expected="<= 2",
            ok=max(slots_seen) <= 2,
            note="round robin by position in each tenant's queue (docs/background-work.md)",
        ),
    ]
