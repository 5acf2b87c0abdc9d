"""Pair 9: noisy neighbours. Nine tenants run a normal load; does a tenth, sending ten times
their rate with heavy queries, slow them down?

One gunicorn (gthread, several workers) serves the application as deployed, pinned to one
core when the machine has two or more; the open-loop load generator (bench.loadgen) runs on
another. Each round runs three sides in alternating order, with the same arrival times for
the nine: `quiet` (the nine alone), `noisy` (the nine plus the noisy tenant under limits) and
`unlimited` (the nine plus the same load from a tenant with the standard plan's limits, far
above that load: what tight limits protect the nine from). After each side the load generator
waits until the server has worked off its backlog, so that no side is charged for another's. The figures are the nine's p50 and p99 latency per round,
counted from when each request was due; the target is the noisy side within 1.2x of quiet.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.dataset import Dataset
from bench.environment import PROJECT_ROOT
from bench.issuer import BenchIssuer
from bench.measure import Check, Row, Target, iqr
from bench.pairs_http import limits_store, server_env
from bench.tenant_limits import limits_for_run
from tenants.models import Tenant
from tests.rls.support import gunicorn_process

WORKERS = 3
THREADS = 4
TARGET = 1.2
# The nine: tenants of the size of pair 6's (a full first page of 50 each), every request the
# first page of their workflows. The noisy ones: the two largest tenants, asking for a page of
# workflows sorted by name whose name matches nothing, which reads every row of the tenant.
NORMAL_RANKS = range(11, 20)
NOISY_RANK = 1
UNLIMITED_RANK = 2
NORMAL_PATH = "/api/workflows/"
HEAVY_PATH = "/api/workflows/?name=no-such-workflow&ordering=name"
# The noisy tenant's limits: a rate below its load, two requests at once, and a statement
# timeout its heavy queries can run into. The "unlimited" one: the standard plan's values,
# far above its load (what a tenant on the default plan could do to the nine).
NOISY_LIMITS = {
    "requests_per_second": 5,
    "burst": 10,
    "concurrent_requests": 2,
    "statement_timeout_ms": 100,
}
UNLIMITED_LIMITS = {
    "requests_per_second": 200,
    "burst": 400,
    "concurrent_requests": 32,
    "statement_timeout_ms": 10_000,
}


@dataclass(frozen=True)
class NeighbourPlan:
    rounds: int
    seconds: float = 10.0
    normal_rate: float = 4.0  # requests per second of each of the nine
    timeout: float = 5.0  # the client gives up on an answer after this long


@contextmanager
def _on_cpus(cpus: set[int]):
    """Run the block (and the processes it starts, which inherit it) on `cpus` only."""
    if not hasattr(os, "sched_setaffinity") or not cpus:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _cpus() -> tuple[set[int], int | None]:
    """(the server's cores, the load generator's core): one each on a machine of two or more."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(available) < 2:
        return set(), None
    return {available[0]}, available[1]


def _loadgen(spec: dict, *, workdir: Path) -> dict:
    path = workdir / "neighbours.json"
    path.write_text(json.dumps(spec))
    sides = len(spec["sides"])
    budget = (spec["rounds"] + 1) * sides * (spec["seconds"] + spec["timeout"] + 10) + 60
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=budget,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _nine(round_figures: dict, names: list[str]) -> list[float]:
    return [latency for name in names for latency in round_figures[name]["latencies"]]


def _totals(runs: list[dict], name: str) -> dict[str, int]:
    totals: dict[str, int] = {"sent": 0, "timeouts": 0, "errors": 0}
    for figures in runs:
        record = figures[name]
        for key in ("sent", "timeouts", "errors"):
            totals[key] += record[key]
        for status, count in record["statuses"].items():
            totals[status] = totals.get(status, 0) + count
    return totals


def compare(*, dataset: Dataset, plan: NeighbourPlan) -> list[Row | Check]:
    ranks = {rank: dataset.tenant_at_rank(rank) for rank in [*NORMAL_RANKS, NOISY_RANK]}
    ranks[UNLIMITED_RANK] = dataset.tenant_at_rank(UNLIMITED_RANK)
    tenants = {
        rank: Tenant.objects.using("owner").get(pk=tenant_id)
        for rank, (tenant_id, _) in ranks.items()
    }
    server_cpus, loadgen_cpu = _cpus()
    issuer = BenchIssuer()
    with ExitStack() as stack:
        stack.callback(issuer.stop)
        issuer.serve()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ameide-bench-")))
        stack.enter_context(limits_for_run(tenants[NOISY_RANK], values=NOISY_LIMITS, why="pair 9"))
        stack.enter_context(
            limits_for_run(tenants[UNLIMITED_RANK], values=UNLIMITED_LIMITS, why="pair 9")
        )
        env = server_env(issuer)
        env["REDIS_URL"], store = limits_store()
        with _on_cpus(server_cpus):
            base, _ = stack.enter_context(
                gunicorn_process(
                    settings="ameide.settings",
                    threads=THREADS,
                    env=env,
                    workers=WORKERS,
                    extra_args=("--access-logfile", "/dev/null"),
                )
            )
        groups: dict[str, dict] = {}
        for rank in [*NORMAL_RANKS, NOISY_RANK, UNLIMITED_RANK]:
            token = issuer.mint(
                tenant_external_id=tenants[rank].external_id, subject=f"bench-neighbour-{rank}"
            )
            heavy = rank in (NOISY_RANK, UNLIMITED_RANK)
            groups[f"rank{rank}"] = {
                "url": base + (HEAVY_PATH if heavy else NORMAL_PATH),
                "headers": {"Authorization": f"Bearer {token}"},
                "rate": plan.normal_rate * (10 if heavy else 1),
                "connections": 32 if heavy else 8,
            }
            # The first request of each token provisions its user: one at a time, before load.
            answer = requests.get(
                base + NORMAL_PATH, headers=groups[f"rank{rank}"]["headers"], timeout=30
            )
            if answer.status_code != 200:
                raise RuntimeError(f"tenant of rank {rank} answered {answer.status_code}")
        nine = [f"rank{rank}" for rank in NORMAL_RANKS]
        spec = {
            "mode": "open",
            "cpu": loadgen_cpu,
            "groups": groups,
            "sides": {
                "quiet": nine,
                "noisy": [*nine, f"rank{NOISY_RANK}"],
                "unlimited": [*nine, f"rank{UNLIMITED_RANK}"],
            },
            "rounds": plan.rounds,
            "warmup_rounds": 1,
            "seconds": plan.seconds,
            "timeout": plan.timeout,
            "drain_url": f"{base}/healthz",
        }
        started = time.monotonic()
        figures = _loadgen(spec, workdir=workdir)
        elapsed = time.monotonic() - started

    p50 = {side: [_percentile(_nine(r, nine), 50) for r in runs] for side, runs in figures.items()}
    p99 = {side: [_percentile(_nine(r, nine), 99) for r in runs] for side, runs in figures.items()}
    nine_totals = {side: [_totals(runs, n) for n in nine] for side, runs in figures.items()}
    nine_not_ok = {
        side: sum(t["sent"] - t.get("200", 0) for t in totals)
        for side, totals in nine_totals.items()
    }
    noisy = _totals(figures["noisy"], f"rank{NOISY_RANK}")
    unlimited = _totals(figures["unlimited"], f"rank{UNLIMITED_RANK}")
    size_noisy, size_unlimited = ranks[NOISY_RANK][1], ranks[UNLIMITED_RANK][1]
    pinned = (
        f"server on CPU {sorted(server_cpus)}, load generator on CPU {loadgen_cpu}"
        if server_cpus
        else "not pinned (one core)"
    )
    setup = (
        f"gunicorn gthread {WORKERS}x{THREADS}, {pinned}; nine tenants at "
        f"{plan.normal_rate:g} req/s each, the noisy one at {10 * plan.normal_rate:g} req/s of "
        f"heavy queries ({size_noisy:,} rows); {plan.seconds:g}s per side and round; "
        f"{store}"
    )
    spread = {
        side: f"IQR p50 {iqr(p50[side]) * 1e3:.2f} ms, p99 {iqr(p99[side]) * 1e3:.2f} ms"
        for side in p50
    }

    def answers(totals: dict[str, int]) -> str:
        return (
            f"{totals['sent']} sent: {totals.get('200', 0)} x 200, {totals.get('429', 0)} x 429, "
            f"{totals.get('503', 0)} x 503, {totals['timeouts']} client timeouts"
        )

    extra = {
        "figures_summary": {
            "nine_not_200": nine_not_ok,
            "noisy": noisy,
            "unlimited": unlimited,
            "seconds": elapsed,
        },
        "p50_s": p50,
        "p99_s": p99,
    }
    return [
        Row(
            pair="9",
            title=f"nine tenants' p50 with a noisy neighbour vs without ({setup})",
            ours_label="noisy",
            base_label="quiet",
            unit="ms",
            ours=p50["noisy"],
            base=p50["quiet"],
            target=Target(high=TARGET),
            note=f"pair 9 spread: quiet {spread['quiet']}; noisy {spread['noisy']}; "
            f"unlimited {spread['unlimited']}",
            extra=extra,
        ),
        Row(
            pair="9b",
            title="nine tenants' p99 with a noisy neighbour vs without",
            ours_label="noisy",
            base_label="quiet",
            unit="ms",
            ours=p99["noisy"],
            base=p99["quiet"],
            target=Target(high=TARGET),
        ),
        Row(
            pair="9c",
            title=f"nine tenants' p50 with the same load from a tenant with the standard plan's "
            f"limits ({size_unlimited:,} rows) vs without",
            ours_label="standard plan",
            base_label="quiet",
            unit="ms",
            ours=p50["unlimited"],
            base=p50["quiet"],
        ),
        Row(
            pair="9d",
            title="nine tenants' p99 with the same load from a tenant with the standard plan's "
            "limits vs without",
            ours_label="standard plan",
            base_label="quiet",
            unit="ms",
            ours=p99["unlimited"],
            base=p99["quiet"],
        ),
        Check(
            pair="9e",
            title="the noisy tenant is refused: 429s (rate, concurrency) and timeouts "
            "(503 statement_timeout, client timeouts)",
            observed=answers(noisy),
            expected="429s > 0 and timeouts > 0",
            ok=noisy.get("429", 0) > 0 and noisy.get("503", 0) + noisy["timeouts"] > 0,
            note=f"pair 9e, the tenant with the standard plan's limits under the same load: "
            f"{answers(unlimited)}",
        ),
        Check(
            pair="9f",
            title="the nine's requests that were not a 200 (quiet, noisy)",
            observed=f"{nine_not_ok['quiet']}, {nine_not_ok['noisy']}",
            expected="0",
            ok=nine_not_ok["quiet"] == nine_not_ok["noisy"] == 0,
            note=f"pair 9f, beside the tenant with the standard plan's limits: "
            f"{nine_not_ok['unlimited']}",
        ),
    ]
