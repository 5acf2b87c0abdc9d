"""Pair 11: a tenant of 100,000 rows moved out of the shared tables and back while other tenants work.

Three tenants of the pair's own (created once in the main dataset, emptied after the pair):
the mover, seeded with 50,000 workflows and as many runs, and two others with 1,000
workflows each. For the whole pair, threads of this process write and read all three through
the ORM (bench.orm_load: creates, updates, deletes, each acknowledged write timed; reads of the
20 newest), the mover's writes retried when its freeze refuses them. Each round moves the
mover to the target (a dedicated schema) and back to the shared tables with `manage.py
tenants move --json`, a process of its own as an operator runs it, and each move is paired
with a quiet window of the same load and no move, in alternating order (quiet first, then
move first, ...). Per move: the freeze window and the copy's rows per second (the engine's own
figures); per window: the other tenants' write and read latency p50 and p99, counted over the
operations that started between the move record's start and end (the quiet window's bounds).

The target is a parameter (MovePlan.target_kind, target_name): MOVE_TARGETS lists what the
pair moves to. `tenants move` moves to a dedicated database too (docs/placement.md), but not
this pair yet: its load runs in this process, which would need the database configured here
(bench.placed.database_env); the command would get it in MovePlan.command_env.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from django.db import connections

from bench.environment import PROJECT_ROOT
from bench.measure import Check, Row, Target, round_order
from bench.orm_load import Load, percentile, within
from tenants.models import Placement, PlacementMove, Tenant

MOVE_TARGETS = (Placement.SCHEMA,)
FREEZE_BOUND_SECONDS = 1.0
LATENCY_TARGET = 1.2
MOVER = "bench-place-move"
OTHERS = ("bench-place-other-1", "bench-place-other-2")
OTHER_WORKFLOWS = 1000
DESCRIPTION = "Generated workflow of the move pair; it moves orders to reports."


@dataclass(frozen=True)
class MovePlan:
    rounds: int = 3  # each a move there and one back, with a quiet window each
    rows: int = 100_000  # half workflows, half runs
    target_kind: str = Placement.SCHEMA
    target_name: str = "bench_place_move"
    quiet_seconds: float = 5.0
    # Between one thread's operations: six threads at up to 50 operations a second each, a
    # steady load that leaves the machine room (saturated, every move's work is only a
    # contest for the cores).
    pause: float = 0.02
    owner_alias: str = "owner"
    # Added to `tenants move`'s environment. The load reads its Tenant row per operation
    # (bench.orm_load), so the source need not stay frozen the deployed 60 s after a switch
    # out of the shared tables (docs/placement.md, "the stale-row rule").
    command_env: tuple[tuple[str, str], ...] = (("TENANCY_MOVE_STALE_SECONDS", "2"),)


def _tenant(slug: str, *, owner: str) -> Tenant:
    tenant, _ = Tenant.objects.using(owner).get_or_create(
        slug=slug, defaults={"external_id": slug, "name": f"Benchmark {slug}"}
    )
    return tenant


def move_command(slug: str, *arguments: str, env: dict[str, str] | None = None) -> dict:
    """`manage.py tenants move SLUG ARGUMENTS --json` in a process of its own, as deployed
    (the project's settings) on the benchmark's database, plus `env`; its summary."""
    done = subprocess.run(
        [sys.executable, "manage.py", "tenants", "move", slug, *arguments, "--json"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {}), "DJANGO_SETTINGS_MODULE": "ameide.settings"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"tenants move {slug} {' '.join(arguments)} exited {done.returncode}: "
            f"{done.stderr[-1000:]}"
        )
    return json.loads(done.stdout)


def _to(kind: str, name: str) -> list[str]:
    return ["--to", kind, *([name] if kind != Placement.SHARED else [])]


def back_to_shared(tenant: Tenant, *, owner: str, env: dict[str, str]) -> None:
    """Whatever an interrupted earlier run left: an unfinished move rolled back (or finished
    where it had switched), then the tenant moved back to the shared tables."""
    move = (
        PlacementMove.objects.using(owner)
        .filter(tenant_id=tenant.pk, finished_at__isnull=True)
        .first()
    )
    if move is not None:
        try:
            move_command(tenant.slug, "--rollback", env=env)
        except RuntimeError:
            move_command(tenant.slug, *_to(move.target_kind, move.target_name), env=env)
    tenant.refresh_from_db(using=owner)
    if tenant.placement != Placement.SHARED:
        move_command(tenant.slug, *_to(Placement.SHARED, ""), env=env)


def empty(tenant_ids: list[int], *, owner: str) -> None:
    """Delete the tenants' rows in the shared tables (as the owner) and vacuum them, so the
    other pairs find the dataset as it was built."""
    with connections[owner].cursor() as cursor:
        for table in ("workflows_workflowrun", "workflows_workflow"):
            cursor.execute(
                f"DELETE FROM {table} WHERE tenant_id = ANY(%s)",  # noqa: S608 (fixed names)
                [tenant_ids],
            )
        cursor.execute("VACUUM (ANALYZE) workflows_workflow, workflows_workflowrun")


def seed(tenant: Tenant, *, workflows: int, runs: bool, owner: str) -> None:
    """`workflows` workflows of the tenant in the shared tables, and a run of each if `runs`."""
    with connections[owner].cursor() as cursor:
        cursor.execute(
            "INSERT INTO workflows_workflow (tenant_id, name, description, definition, status, "
            "owner_id, created_at, updated_at) "
            "SELECT %s, 'seed ' || g, %s, '{\"steps\": []}'::jsonb, 'draft', NULL, now(), now() "
            "FROM generate_series(1, %s) AS g",
            [tenant.pk, DESCRIPTION, workflows],
        )
        if runs:
            cursor.execute(
                "INSERT INTO workflows_workflowrun (tenant_id, workflow_id, status, input, "
                "output, created_at) "
                "SELECT tenant_id, id, 'queued', '{\"n\": 1}'::jsonb, '{}'::jsonb, now() "
                "FROM workflows_workflow WHERE tenant_id = %s",
                [tenant.pk],
            )
        cursor.execute("ANALYZE workflows_workflow, workflows_workflowrun")


@dataclass
class _Window:
    start: float
    end: float
    move: dict | None = None  # the move's summary; None: a quiet window


def _moved(slug: str, *, kind: str, name: str, owner: str, env: dict[str, str]) -> _Window:
    summary = move_command(slug, *_to(kind, name), env=env)
    if summary.get("outcome") != "done":
        raise RuntimeError(f"move of {slug} to {kind} {name}: {summary}")
    record = PlacementMove.objects.using(owner).get(pk=summary["move_id"])
    return _Window(
        start=record.started_at.timestamp(), end=record.finished_at.timestamp(), move=summary
    )


def _quiet(seconds: float) -> _Window:
    start = time.time()
    time.sleep(seconds)
    return _Window(start=start, end=time.time())


def _latencies(loads: list[Load], window: _Window) -> dict[str, float]:
    writes = [s for load in loads for s in within(load.writes, start=window.start, end=window.end)]
    reads = [
        s for load in loads for s in within(load.read_times, start=window.start, end=window.end)
    ]
    if not writes or not reads:
        raise RuntimeError("no operation of the other tenants in a window: is the load running?")
    return {
        "write_p50": percentile(writes, 0.5),
        "write_p99": percentile(writes, 0.99),
        "read_p50": percentile(reads, 0.5),
        "read_p99": percentile(reads, 0.99),
        "writes": len(writes),
        "reads": len(reads),
    }


def compare(*, plan: MovePlan) -> list[Row | Check]:
    if plan.target_kind not in MOVE_TARGETS:
        raise ValueError(
            f"pair 11 moves to {' or '.join(MOVE_TARGETS)}, not {plan.target_kind!r} "
            "(see this module's docstring)"
        )
    if plan.rounds < 3:
        raise ValueError("pair 11 needs at least 3 rounds")
    owner, env = plan.owner_alias, dict(plan.command_env)
    mover = _tenant(MOVER, owner=owner)
    others = [_tenant(slug, owner=owner) for slug in OTHERS]
    back_to_shared(mover, owner=owner, env=env)
    ids = [mover.pk, *(t.pk for t in others)]
    empty(ids, owner=owner)
    seed(mover, workflows=plan.rows // 2, runs=True, owner=owner)
    for other in others:
        seed(other, workflows=OTHER_WORKFLOWS, runs=False, owner=owner)

    stop = threading.Event()
    loads = [Load(t, stop, prefix="bench load ", pause=plan.pause) for t in (mover, *others)]
    threads = [threading.Thread(target=work) for load in loads for work in (load.write, load.read)]
    figures: dict[str, list[dict]] = {"before": [], "during": []}
    moves: dict[str, list[dict]] = {"there": [], "back": []}
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # connections opened, the load under way
        legs = (("there", plan.target_kind, plan.target_name), ("back", Placement.SHARED, ""))
        for index in range(plan.rounds * 2):
            leg, kind, name = legs[index % 2]
            # Quiet first and move first alternate within each direction and across them.
            for side in round_order(["before", "during"], index // 2 + index % 2):
                if side == "before":
                    window = _quiet(plan.quiet_seconds)
                else:
                    window = _moved(MOVER, kind=kind, name=name, owner=owner, env=env)
                    moves[leg].append(window.move)
                figures[side].append(_latencies(loads[1:], window))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        connections.close_all()
        mover.refresh_from_db(using=owner)
        back_to_shared(mover, owner=owner, env=env)
        empty(ids, owner=owner)
    errors = [e for load in loads for e in load.errors]
    if errors:
        raise RuntimeError(f"the load failed: {errors[:3]}")
    return _rows(plan=plan, figures=figures, moves=moves, loads=loads)


def _rows(*, plan, figures, moves, loads) -> list[Row | Check]:
    all_moves = [m for pair in zip(moves["there"], moves["back"], strict=True) for m in pair]
    freeze = [m["stats"]["freeze_ms"] / 1000 for m in all_moves]
    rows = {leg: [sum(m["stats"]["copied"].values()) for m in ms] for leg, ms in moves.items()}
    rate = {leg: [m["stats"]["copy_rows_per_second"] for m in ms] for leg, ms in moves.items()}
    target = f"{plan.target_kind} {plan.target_name}"
    setup = (
        f"{plan.rounds} rounds of a move there and back, {min(rows['there']):,}-"
        f"{max(rows['there']):,} rows, `manage.py tenants move` in its own process; two other "
        f"tenants written and read by 4 threads, the mover by 2"
    )
    side = {
        name: {key: [f[key] for f in runs] for key in runs[0]} for name, runs in figures.items()
    }
    latency_rows = [
        Row(
            pair=f"11{letter}",
            title=f"other tenants' {what} {q} during a move vs before it (quiet windows of "
            f"{plan.quiet_seconds:g} s, interleaved; "
            f"{sum(side['during'][what + 's']):,} and {sum(side['before'][what + 's']):,} "
            f"{what}s)",
            ours_label="during",
            base_label="before",
            unit="ms",
            ours=side["during"][f"{what}_{q}"],
            base=side["before"][f"{what}_{q}"],
            target=Target(high=LATENCY_TARGET),
        )
        for letter, what, q in (
            ("b", "write", "p50"),
            ("c", "write", "p99"),
            ("d", "read", "p50"),
            ("e", "read", "p99"),
        )
    ]
    refused = sum(load.refused for load in loads[1:])
    return [
        Row(
            pair="11",
            title=f"freeze window of the mover, shared -> {target} and back ({setup})",
            ours_label="freeze",
            base_label="bound",
            unit="ms",
            ours=freeze,
            base=[FREEZE_BOUND_SECONDS] * len(freeze),
            target=Target(high=1.0),  # the ratio is the freeze in units of the bound
            note=f"the mover's writes refused by its freeze and retried: "
            f"{loads[0].refused}; seconds per step of the first move: "
            f"{all_moves[0]['stats']['seconds']}",
            extra={"moves": all_moves, "windows": figures},
        ),
        Row(
            pair="11a",
            title=f"copy throughput, to {target} vs back to the shared tables",
            ours_label="there",
            base_label="back",
            unit="rows/s",
            ours=rate["there"],
            base=rate["back"],
        ),
        *latency_rows,
        Check(
            pair="11f",
            title="other tenants' writes refused during the moves",
            observed=str(refused),
            expected="0",
            ok=refused == 0,
        ),
    ]
