"""Pair 6: GET /api/workflows/ under gunicorn with full tenancy and without it, driven by wrk.

Two gunicorn servers (gthread) run side by side on loopback ports: the application as
deployed (bearer JWT verified against a benchmark issuer, tenant context, limits and usage,
RLS backend, runtime role, persistent connections with their default health check) and
bench.settings_off (the same viewset over a plain queryset, owner role, Django's stock backend
and defaults, no tenant or limits middleware), which also serves the same 50 rows as a static
body.

wrk runs pinned to one core and both servers to the other (taskset); PostgreSQL runs where the
scheduler puts it. Rounds of a fixed length alternate between the sides (on off, off on, ...),
after a warm-up round. Each round yields the throughput and the CPU one request cost: the
gunicorn workers' time plus that of the PostgreSQL backends serving them (told apart by
application_name), read from /proc and divided by the requests wrk counted.

Pair 10, the same way: the application as deployed against bench.settings_limits_off (the same
application without the limits middleware, usage recording, the JSON line per request and the
statements' timing): what limits, usage and logs cost a request.

Pair 12, the same way on one server (the application as deployed, with a dedicated database
named): pair 6's tenant in the shared tables against copies of its workflows in a dedicated
schema and in a dedicated database (bench.placed), one bearer token each: what routing by
placement costs a request.
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
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from django.conf import settings
from django.db import connections

from bench import placed, profiling
from bench.cpu import BackendCpu, cpu_seconds
from bench.dataset import SERVED_RANK, Dataset
from bench.environment import PROJECT_ROOT
from bench.issuer import AUDIENCE, ROLES_CLAIM, TENANT_CLAIM, BenchIssuer
from bench.measure import Check, Row, Target, round_order
from bench.tenant_limits import limits_for_run
from tenants.models import Tenant

WORKERS = 2
THREADS = 4
CONNECTIONS = WORKERS * THREADS
THROUGHPUT_TARGET = 0.90
CPU_TARGET = 1.10
WRK_SCRIPT = Path(__file__).with_name("wrk_report.lua")
# One core for the load generator, the other for the servers; on a 1-core machine, no pinning.
PINNED = (os.cpu_count() or 1) >= 2
SERVER_CPUS, LOAD_CPUS = "0", "1"
# The shared store of rate and concurrency limits a deployment runs with (docs/limits.md);
# without a Redis, the PostgreSQL store, and the table says so.
REDIS_URL = os.environ.get("AMEIDE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
HEADROOM_KEYS = ("requests_per_second", "burst", "concurrent_requests")


@dataclass(frozen=True)
class HttpPlan:
    rounds: int
    seconds: float
    warmup_seconds: float = 3.0
    static_rounds: int = 5


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


def _pinned(command: list[str], cpus: str) -> list[str]:
    return ["taskset", "-c", cpus, *command] if PINNED else command


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
            _pinned(command, SERVER_CPUS),
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


def _wrk(*, url: str, headers: dict[str, str], seconds: float) -> dict:
    """One wrk run (1 thread, CONNECTIONS connections); its JSON report."""
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-s", str(WRK_SCRIPT), url]
    done = subprocess.run(
        _pinned(command, LOAD_CPUS),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line.removeprefix("WRK_JSON "))
    raise RuntimeError(f"wrk printed no report: {done.stdout[-500:]} {done.stderr[-500:]}")


@dataclass
class _Side:
    """One server under load: where to send requests and whose CPU to count."""

    url: str
    headers: dict[str, str]
    master_pid: int
    backends: BackendCpu | None  # None: a body that touches no database

    def round(self, *, seconds: float) -> dict:
        workers = profiling.worker_pids(self.master_pid)
        before = {pid: cpu_seconds(pid) or 0.0 for pid in workers}
        backends_before = self.backends.poll() if self.backends else {}
        report = _wrk(url=self.url, headers=self.headers, seconds=seconds)
        worker_cpu = sum((cpu_seconds(pid) or before[pid]) - before[pid] for pid in workers)
        backend_cpu = self.backends.since(backends_before) if self.backends else 0.0
        requests = max(report["requests"], 1)
        return {
            **report,
            "rps": report["requests"] / (report["duration_us"] / 1e6),
            "worker_cpu_s": worker_cpu,
            "backend_cpu_s": backend_cpu,
            "cpu_per_request_s": (worker_cpu + backend_cpu) / requests,
        }


def _series(
    figures: dict[str, list[dict]], *, log: Path, also: dict[str, list[dict]] | None = None
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Per side, each round's CPU per request and p99 (seconds) and requests per second;
    refuses a measurement in which any request failed (`also`: more rounds to look at), and
    says what the servers' log (`log`) tells of the failures."""
    errors = {
        name: sum(r["socket_errors"] + r["status_errors"] for r in runs)
        for name, runs in {**figures, **(also or {})}.items()
    }
    if any(errors.values()):
        raise RuntimeError(
            f"failed requests during the runs: {errors}; the servers logged {_failures(log)}"
        )
    cpu = {name: [r["cpu_per_request_s"] for r in runs] for name, runs in figures.items()}
    rps = {name: [r["rps"] for r in runs] for name, runs in figures.items()}
    p99 = {name: [r["p99_us"] / 1e6 for r in runs] for name, runs in figures.items()}
    return cpu, rps, p99


def _failures(log: Path) -> str:
    """The answers other than 200 in a servers' log (its access lines, JSON) and its warnings
    and errors, most frequent first: what a failed run is told, as the log goes with it."""
    tally: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            tally[line[:100]] += 1  # a traceback's lines, gunicorn's own
            continue
        status = record.get("status")
        if status is not None and status != 200:
            tally[f"{record.get('method')} {record.get('path')} {status}"] += 1
        elif status is None and record.get("level") in {"WARNING", "ERROR", "CRITICAL"}:
            tally[str(record.get("message"))[:100]] += 1
    return "; ".join(f"{count} x {what}" for what, count in tally.most_common(8)) or "nothing"


def _interleaved(sides: dict[str, _Side], *, rounds: int, seconds: float, warmup: float):
    """Alternating rounds of every side after one warm-up round each; {side: [round, ...]}."""
    for side in sides.values():
        side.round(seconds=warmup)
    figures: dict[str, list[dict]] = {name: [] for name in sides}
    for index in range(rounds):
        for name in round_order(list(sides), index):
            figures[name].append(sides[name].round(seconds=seconds))
    return figures


def limits_store() -> tuple[str, str]:
    """(REDIS_URL for the tenant-aware server, the store's name for the table)."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return "", "limits in PostgreSQL"
    return REDIS_URL, "limits in Redis"


def server_env(issuer: BenchIssuer) -> dict[str, str]:
    """The environment of a benchmark server: the loopback issuer, DEBUG off, quiet logs."""
    env = {
        **os.environ,
        "DEBUG": "false",
        "LOG_LEVEL": "ERROR",
        "OIDC_PROVIDER": "generic",
        "OIDC_ISSUER": issuer.issuer,
        "OIDC_AUDIENCE": AUDIENCE,
        "OIDC_TENANT_CLAIM": TENANT_CLAIM,
        "OIDC_ROLES_CLAIM": ROLES_CLAIM,
        "TENANCY_REDIS_PREFIX": "ameide-bench:",
    }
    env.pop("CONN_MAX_AGE", None)  # every side runs with the application's default
    return env


def _owner_params() -> dict:
    return {
        key: value
        for key, value in connections["owner"].get_connection_params().items()
        if key in {"dbname", "user", "password", "host", "port"}
    }


@dataclass
class _Run:
    """What both HTTP pairs set up: the served tenant, a benchmark issuer and a bearer token
    of it, the servers' environment, and the exit stack that stops everything."""

    stack: ExitStack
    tenant_id: int
    size: int
    issuer: BenchIssuer
    workdir: Path
    bearer: dict[str, str]
    env: dict[str, str]
    store: str
    log: Path
    owner_params: dict

    def backends(self, application_name: str) -> BackendCpu:
        """CPU of the PostgreSQL backends of one server, polled until the run ends."""
        return self.stack.enter_context(
            BackendCpu(connect_kwargs=self.owner_params, application_name=application_name)
        )


def _headroom(tenant: Tenant, *, stack: ExitStack) -> None:
    """The enterprise plan's rate, burst and concurrency for `tenant` until `stack` closes.

    These pairs measure what checking the limits costs a request, not the limits: with the
    standard plan's 200 requests per second and burst of 400, a side that runs two rounds back
    to back (round_order) at more than 240 requests per second is refused with 429s, and the
    run fails. The checks themselves are the same whatever the numbers."""
    enterprise = settings.TENANCY_PLANS["enterprise"]
    values = {key: enterprise[key] for key in HEADROOM_KEYS}
    stack.enter_context(limits_for_run(tenant, values=values, why="HTTP pairs"))


@contextmanager
def _served(dataset: Dataset):
    tenant_id, size = dataset.tenant_at_rank(SERVED_RANK)
    tenant = Tenant.objects.using("owner").get(pk=tenant_id)
    issuer = BenchIssuer()
    owner_params = _owner_params()
    with ExitStack() as stack:
        _headroom(tenant, stack=stack)
        stack.callback(issuer.stop)
        issuer.serve()
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ameide-bench-")))
        token = issuer.mint(tenant_external_id=tenant.external_id, subject="bench-http-member")
        env = server_env(issuer)
        env["REDIS_URL"], store = limits_store()
        yield _Run(
            stack=stack,
            tenant_id=tenant_id,
            size=size,
            issuer=issuer,
            workdir=workdir,
            bearer={"Authorization": f"Bearer {token}"},
            env=env,
            store=store,
            log=workdir / "gunicorn.log",
            owner_params=owner_params,
        )


def _setup(*, plan: HttpPlan, store: str, size: int) -> str:
    pinning = "wrk on core 1, gunicorn on core 0" if PINNED else "no pinning (1 core)"
    return (
        f"gunicorn gthread {WORKERS}x{THREADS}, wrk {CONNECTIONS} connections, {pinning}, {store}, "
        f"{plan.rounds} rounds of {plan.seconds:g}s, tenant with {size:,} rows and the "
        "enterprise plan's rate"
    )


def throughput(*, dataset: Dataset, plan: HttpPlan) -> list[Row | Check]:
    with _served(dataset) as run:
        stack, issuer, bearer, env, log = run.stack, run.issuer, run.bearer, run.env, run.log
        on, on_pid = stack.enter_context(
            _gunicorn(
                settings_module="ameide.settings",
                env={**env, "PGAPPNAME": "ameide-bench-on"},
                log=log,
            )
        )
        status, body = _get(f"{on}/api/workflows/", bearer)
        if status != 200:
            raise RuntimeError(f"tenant-aware endpoint answered {status}: {body[:300]!r}")
        on_rows = json.loads(body)["results"]
        static_body = run.workdir / "static.json"
        static_body.write_bytes(body)
        off_env = {
            **env,
            "PGAPPNAME": "ameide-bench-off",
            "AMEIDE_BENCH_TENANCY_OFF": "1",
            "AMEIDE_BENCH_TENANT_ID": str(run.tenant_id),
            "AMEIDE_BENCH_STATIC_BODY": str(static_body),
        }
        off, off_pid = stack.enter_context(
            _gunicorn(settings_module="bench.settings_off", env=off_env, log=log)
        )
        status, body = _get(f"{off}/api/workflows/")
        if status != 200 or json.loads(body)["results"] != on_rows or len(on_rows) != 50:
            raise RuntimeError(
                f"the tenancy-off endpoint does not return the same 50 rows: {status} {body[:300]!r}"
            )

        sides = {
            "on": _Side(f"{on}/api/workflows/", bearer, on_pid, run.backends("ameide-bench-on")),
            "off": _Side(f"{off}/api/workflows/", {}, off_pid, run.backends("ameide-bench-off")),
        }
        # Every worker process loads the issuer's keys once, on its first token: the warm-up
        # round makes sure that happened before anything is counted.
        sides["on"].round(seconds=plan.warmup_seconds)
        warm_requests = issuer.requests
        figures = _interleaved(
            sides, rounds=plan.rounds, seconds=plan.seconds, warmup=plan.warmup_seconds
        )
        idp_requests = issuer.requests - warm_requests
        static = _Side(f"{off}/bench/static/", {}, off_pid, None)
        ceiling = _interleaved(
            {"off": sides["off"], "static": static},
            rounds=plan.static_rounds,
            seconds=min(plan.seconds, 3.0),
            warmup=1.0,
        )
        cpu, _, p99 = _series(figures, log=log, also={"static": ceiling["static"]})
        profile = None
        rps = {name: [r["rps"] for r in runs] for name, runs in figures.items()}
        if statistics.median(rps["on"]) / statistics.median(rps["off"]) < THROUGHPUT_TARGET:
            # Where does a tenant-aware request spend its time? Sample the workers under load.
            runs = profiling.start_sampling(
                profiling.worker_pids(on_pid), seconds=plan.seconds + 2, name="pair6-worker"
            )
            sides["on"].round(seconds=plan.seconds + 3)
            profile = profiling.summarize(runs, name="pair6")

    setup = _setup(plan=plan, store=run.store, size=run.size)
    return [
        Row(
            pair="6",
            title=f"GET /api/workflows/ (50 rows): full tenancy vs tenancy off ({setup})",
            ours_label="tenancy",
            base_label="off",
            unit="req/s",
            ours=rps["on"],
            base=rps["off"],
            target=Target(low=THROUGHPUT_TARGET),
            note=f"profile of the tenant-aware workers: {profile}" if profile else "",
            extra={"figures": figures, "profile": str(profile)},
        ),
        Row(
            pair="6a",
            title="CPU per request, gunicorn worker + PostgreSQL backend (/proc)",
            ours_label="tenancy",
            base_label="off",
            unit="us",
            ours=cpu["on"],
            base=cpu["off"],
            target=Target(high=CPU_TARGET),
        ),
        Row(
            pair="6b",
            title=f"p99 latency under load ({CONNECTIONS} connections)",
            ours_label="tenancy",
            base_label="off",
            unit="ms",
            ours=p99["on"],
            base=p99["off"],
        ),
        Row(
            pair="6c",
            title="DRF endpoint without tenancy vs a static body of the same 50 rows (ceiling)",
            ours_label="off",
            base_label="static",
            unit="req/s",
            ours=[r["rps"] for r in ceiling["off"]],
            base=[r["rps"] for r in ceiling["static"]],
            extra={"figures": ceiling},
        ),
        Check(
            pair="5/6",
            title="identity-provider requests during the HTTP runs",
            observed=f"{idp_requests} (warm-up: {warm_requests}, {WORKERS} workers)",
            expected="0",
            ok=idp_requests == 0,
        ),
    ]


LIMITS_COST_TARGET = 1.03


def limits_cost(*, dataset: Dataset, plan: HttpPlan) -> list[Row]:
    """Pair 10: GET /api/workflows/ with limits, usage and JSON logs on and off, as pair 6
    measures (wrk, pinned, interleaved rounds; CPU per request of workers and backends)."""
    with _served(dataset) as run:
        stack, bearer, env, log = run.stack, run.bearer, run.env, run.log
        servers = {}
        for name, settings_module, extra in (
            ("on", "ameide.settings", {}),
            ("off", "bench.settings_limits_off", {"AMEIDE_BENCH_LIMITS_OFF": "1"}),
        ):
            base, pid = stack.enter_context(
                _gunicorn(
                    settings_module=settings_module,
                    env={**env, **extra, "PGAPPNAME": f"ameide-bench-limits-{name}"},
                    log=log,
                )
            )
            servers[name] = (base, pid)
        bodies = {}
        for name, (base, _) in servers.items():
            status, body = _get(f"{base}/api/workflows/", bearer)
            if status != 200:
                raise RuntimeError(f"{name}: /api/workflows/ answered {status}: {body[:300]!r}")
            bodies[name] = json.loads(body)["results"]
        if bodies["on"] != bodies["off"]:
            raise RuntimeError("the limits-off server does not return the same rows")
        sides = {
            name: _Side(
                f"{base}/api/workflows/",
                bearer,
                pid,
                run.backends(f"ameide-bench-limits-{name}"),
            )
            for name, (base, pid) in servers.items()
        }
        figures = _interleaved(
            sides, rounds=plan.rounds, seconds=plan.seconds, warmup=plan.warmup_seconds
        )
        cpu, rps, p99 = _series(figures, log=log)
    setup = _setup(plan=plan, store=run.store, size=run.size)
    return [
        Row(
            pair="10",
            title="GET /api/workflows/, CPU per request (gunicorn worker + PostgreSQL backend): "
            f"limits, usage and JSON logs on vs off ({setup})",
            ours_label="on",
            base_label="off",
            unit="us",
            ours=cpu["on"],
            base=cpu["off"],
            target=Target(high=LIMITS_COST_TARGET),
            extra={"figures": figures},
        ),
        Row(
            pair="10a",
            title="the same, time per request at saturation (1 / throughput)",
            ours_label="on",
            base_label="off",
            unit="us",
            ours=[1.0 / r for r in rps["on"]],
            base=[1.0 / r for r in rps["off"]],
            target=Target(high=LIMITS_COST_TARGET),
        ),
        Row(
            pair="10b",
            title=f"the same, p99 latency under load ({CONNECTIONS} connections)",
            ours_label="on",
            base_label="off",
            unit="ms",
            ours=p99["on"],
            base=p99["off"],
        ),
    ]


PLACEMENT_TARGET = 1.05  # a dedicated placement costs at most this much of shared


def placements(*, dataset: Dataset, plan: HttpPlan) -> list[Row]:
    """Pair 12: GET /api/workflows/ of a tenant in a dedicated schema and of one in a dedicated
    database, each against the shared tenant whose rows they copy, on one server, as pair 6
    measures (wrk, pinning, interleaved rounds; CPU per request of workers and backends)."""
    with _served(dataset) as run:
        stack, env = run.stack, run.env
        placed_env = placed.ensure_near(main=connections["owner"].settings_dict["NAME"])
        tenants = {
            "schema": placed.schema_copy(source=run.tenant_id, owner="owner"),
            "database": placed.database_copy(source=run.tenant_id, owner="owner", env=placed_env),
        }
        for tenant in tenants.values():
            _headroom(tenant, stack=stack)
        bearers = {"shared": run.bearer}
        for kind, tenant in tenants.items():
            token = run.issuer.mint(
                tenant_external_id=tenant.external_id, subject=f"bench-http-{kind}"
            )
            bearers[kind] = {"Authorization": f"Bearer {token}"}
        base, pid = stack.enter_context(
            _gunicorn(
                settings_module="ameide.settings",
                env={**env, **placed_env, "PGAPPNAME": "ameide-bench-placed"},
                log=run.log,
            )
        )
        pages = {}
        for kind, bearer in bearers.items():
            status, body = _get(f"{base}/api/workflows/", bearer)
            if status != 200:
                raise RuntimeError(f"{kind}: /api/workflows/ answered {status}: {body[:300]!r}")
            pages[kind] = [(r["name"], r["created_at"]) for r in json.loads(body)["results"]]
        if any(page != pages["shared"] or len(page) != 50 for page in pages.values()):
            raise RuntimeError("the placed tenants do not serve the shared tenant's first page")
        backends = run.backends("ameide-bench-placed")
        sides = {
            kind: _Side(f"{base}/api/workflows/", bearer, pid, backends)
            for kind, bearer in bearers.items()
        }
        figures = _interleaved(
            sides, rounds=plan.rounds, seconds=plan.seconds, warmup=plan.warmup_seconds
        )
        cpu, rps, _ = _series(figures, log=run.log)
    setup = _setup(plan=plan, store=run.store, size=run.size)
    rows = []
    for pair, cpu_pair, kind, where in (
        ("12", "12a", "schema", f"a dedicated schema ({placed.SCHEMA})"),
        ("12b", "12c", "database", f"a dedicated database ({placed.NEAR}, on the same server)"),
    ):
        rows += [
            Row(
                pair=pair,
                title=f"GET /api/workflows/ (50 rows), throughput: the tenant in {where} vs "
                f"the shared tenant whose rows it copies, one server ({setup})",
                ours_label=kind,
                base_label="shared",
                unit="req/s",
                ours=rps[kind],
                base=rps["shared"],
                target=Target(low=1 / PLACEMENT_TARGET),
                extra={"figures": {kind: figures[kind], "shared": figures["shared"]}},
            ),
            Row(
                pair=cpu_pair,
                title=f"the same, CPU per request (gunicorn worker + PostgreSQL backends), {kind}",
                ours_label=kind,
                base_label="shared",
                unit="us",
                ours=cpu[kind],
                base=cpu["shared"],
                target=Target(high=PLACEMENT_TARGET),
            ),
        ]
    return rows
