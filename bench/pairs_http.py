"""Pair 6: GET /api/workflows/ under gunicorn with full tenancy, without it, and a static body.

Two gunicorn servers (gthread) run side by side on loopback ports: the application as
deployed (bearer JWT verified against a benchmark issuer, tenant context, RLS backend, runtime
role) and bench.settings_off (the same viewset over a plain queryset, owner role, no
middleware, no RLS), which also serves the same 50 rows as a static body. The load generator
(bench.loadgen, locust) alternates between them.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import profiling
from bench.dataset import SERVED_RANK, Dataset
from bench.environment import PROJECT_ROOT
from bench.issuer import AUDIENCE, ROLES_CLAIM, TENANT_CLAIM, BenchIssuer
from bench.measure import Check, Row, Target
from tenants.models import Tenant

WORKERS = 2
THREADS = 4
TARGET = 0.85


@dataclass(frozen=True)
class HttpPlan:
    rounds: int
    seconds: float
    warmup_seconds: float = 1.0
    users: int = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback only)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextmanager
def _gunicorn(*, settings_module: str, env: dict[str, str], log: Path):
    """A gunicorn (gthread) on a free loopback port; yields its base URL, stops it after."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "ameide.wsgi",
        "--worker-class",
        "gthread",
        "--workers",
        str(WORKERS),
        "--threads",
        str(THREADS),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": settings_module},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn ({settings_module}) exited; see {log}")
            try:
                if _get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn ({settings_module}) did not answer; see {log}")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _loadgen(spec: dict, *, workdir: Path) -> dict:
    path = workdir / "loadgen.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", str(path)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60
        + (spec["rounds"] + 1)
        * len(spec["targets"])
        * 3
        * (spec["seconds"] + spec["warmup_seconds"] + 5),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def throughput(*, dataset: Dataset, plan: HttpPlan) -> list[Row | Check]:
    tenant_id, size = dataset.tenant_at_rank(SERVED_RANK)
    tenant = Tenant.objects.using("owner").get(pk=tenant_id)
    issuer = BenchIssuer()
    with ExitStack() as stack:
        stack.callback(issuer.stop)
        issuer.serve()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ameide-bench-")))
        token = issuer.mint(tenant_external_id=tenant.external_id, subject="bench-http-member")
        bearer = {"Authorization": f"Bearer {token}"}
        env = {
            **os.environ,
            "DEBUG": "false",
            "LOG_LEVEL": "ERROR",
            "CONN_MAX_AGE": "60",
            "OIDC_PROVIDER": "generic",
            "OIDC_ISSUER": issuer.issuer,
            "OIDC_AUDIENCE": AUDIENCE,
            "OIDC_TENANT_CLAIM": TENANT_CLAIM,
            "OIDC_ROLES_CLAIM": ROLES_CLAIM,
        }
        log = workdir / "gunicorn.log"
        on, on_pid = stack.enter_context(
            _gunicorn(settings_module="ameide.settings", env=env, log=log)
        )
        status, body = _get(f"{on}/api/workflows/", bearer)
        if status != 200:
            raise RuntimeError(f"tenant-aware endpoint answered {status}: {body[:300]!r}")
        on_rows = json.loads(body)["results"]
        static_body = workdir / "static.json"
        static_body.write_bytes(body)
        off_env = {
            **env,
            "AMEIDE_BENCH_TENANCY_OFF": "1",
            "AMEIDE_BENCH_TENANT_ID": str(tenant_id),
            "AMEIDE_BENCH_STATIC_BODY": str(static_body),
        }
        off, _ = stack.enter_context(
            _gunicorn(settings_module="bench.settings_off", env=off_env, log=log)
        )
        status, body = _get(f"{off}/api/workflows/")
        if status != 200 or json.loads(body)["results"] != on_rows or len(on_rows) != 50:
            raise RuntimeError("the tenancy-off endpoint does not return the same 50 rows")

        targets = {
            "on": {"url": f"{on}/api/workflows/", "headers": bearer},
            "off": {"url": f"{off}/api/workflows/"},
            "static": {"url": f"{off}/bench/static/"},
        }
        common = {"users": plan.users, "warmup_seconds": plan.warmup_seconds}
        # Every worker process loads the issuer's keys once, on its first token: a warm-up
        # pass makes sure that happened before anything is counted.
        _loadgen(
            {**common, "targets": {"on": targets["on"]}, "rounds": 0, "seconds": 2},
            workdir=workdir,
        )
        warm_requests = issuer.requests
        figures = _loadgen(
            {**common, "targets": targets, "rounds": plan.rounds, "seconds": plan.seconds},
            workdir=workdir,
        )
        idp_requests = issuer.requests - warm_requests
        profile = None
        ratio = statistics.median(r["rps"] for r in figures["on"]) / statistics.median(
            r["rps"] for r in figures["off"]
        )
        if ratio < TARGET:
            # Where does a tenant-aware request spend its time? Sample the workers under load.
            runs = profiling.start_sampling(
                profiling.worker_pids(on_pid), seconds=plan.seconds + 2, name="pair6-worker"
            )
            _loadgen(
                {
                    **common,
                    "targets": {"on": targets["on"]},
                    "rounds": 1,
                    "warmup_rounds": 0,
                    "seconds": plan.seconds + 3,
                },
                workdir=workdir,
            )
            profile = profiling.summarize(runs, name="pair6")

    failures = {name: sum(r["failures"] for r in runs) for name, runs in figures.items()}
    if any(failures.values()):
        raise RuntimeError(f"failed requests during the runs: {failures}")
    rps = {name: [r["rps"] for r in runs] for name, runs in figures.items()}
    latency = {name: [r["median_ms"] for r in runs] for name, runs in figures.items()}
    setup = (
        f"gunicorn gthread {WORKERS}x{THREADS}, locust {plan.users} users, "
        f"{plan.seconds:g}s per run, tenant with {size:,} rows"
    )
    return [
        Row(
            pair="6",
            title=f"GET /api/workflows/ (50 rows): full tenancy vs tenancy off ({setup})",
            ours_label="tenancy",
            base_label="off",
            unit="req/s",
            ours=rps["on"],
            base=rps["off"],
            target=Target(low=TARGET),
            note=f"profile of the tenant-aware workers: {profile.name}" if profile else "",
            extra={"median_latency_ms": latency, "figures": figures, "profile": str(profile)},
        ),
        Row(
            pair="6b",
            title="full tenancy vs a static JSON body of the same 50 rows (the ceiling)",
            ours_label="tenancy",
            base_label="static",
            unit="req/s",
            ours=rps["on"],
            base=rps["static"],
        ),
        Row(
            pair="6c",
            title="DRF endpoint without tenancy vs the static body",
            ours_label="off",
            base_label="static",
            unit="req/s",
            ours=rps["off"],
            base=rps["static"],
        ),
        Check(
            pair="5/6",
            title="identity-provider requests during the HTTP runs",
            observed=f"{idp_requests} (warm-up: {warm_requests}, {WORKERS} workers)",
            expected="0",
            ok=idp_requests == 0,
        ),
    ]
