"""`python -m bench.attribution [--parts]`: where an API request's CPU goes, in-process.

Pairs 6 and 10 measure whole servers; this calls Django's WSGI handler directly (no gunicorn,
no client socket), in one process per variant, so that what differs between the variants is
the application's own work:

- `full`: the application as deployed (ameide.settings, a bench issuer's bearer token);
- `limits-off`: bench.settings_limits_off, pair 10's baseline;
- `off`: bench.settings_off, pair 6's baseline;
- with --parts, `full-parts`: `full` again, with the parts timed (PARTS) and the collector
  paused, so that a collection is not charged to the part that happened to trigger it; it is
  left out of the comparison with `off`.

Every round sends `--requests` GET /api/workflows/ (pair 6's tenant and page) to each variant,
interleaved (A B C, C B A, ...). Per request: the process's CPU (and how much of it the kernel
spent), its PostgreSQL backend's (/proc), wall time, and the cyclic garbage collector's time
(gc.callbacks). The parts cost 3-8x less in a loop of their own: a request's other work evicts
what a loop keeps in the CPU's caches (docs/benchmarks.md, stop 23). Needs the quick dataset
(`make bench` builds it); Redis as pair 6 uses it when it answers.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.measure import round_order, summary

VARIANTS = {
    "full": "ameide.settings",
    "limits-off": "bench.settings_limits_off",
    "off": "bench.settings_off",
    "full-parts": "ameide.settings",
}
# (label, module, attribute path): what `full-parts` times, the parts tenancy and limits add.
PARTS = (
    ("whole request (Django handler)", "django.core.handlers.base", "BaseHandler.get_response"),
    ("DRF view (serializer, query)", "rest_framework.views", "APIView.dispatch"),
    ("token and principal", "accounts.callers", "resolve_principal"),
    ("statement scope (prefix)", "tenants.db.backend.base", "DatabaseWrapper.scope_prefix"),
    ("limits: admission (store)", "limits.store", "RedisStore.admit"),
    ("limits: release (store)", "limits.store", "RedisStore.release"),
    ("limits: tenant's limits", "limits.selectors", "limits_of"),
    ("access log line", "limits.middleware", "logger.info"),
    ("metrics", "limits.metrics", "observe"),
    ("usage", "limits.middleware", "recorder.add"),
    ("rate headers", "limits.middleware", "rate_headers"),
)
PATH = "/api/workflows/"
WARMUP_REQUESTS = 50


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.attribution", description=__doc__)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=500, help="per variant and round")
    parser.add_argument("--parts", action="store_true", help="also time the parts of `full`")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _environ(authorization: str) -> dict:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if authorization:
        environ["HTTP_AUTHORIZATION"] = authorization
    return environ


class _Parts:
    """Thread CPU spent inside each part, while switched on."""

    def __init__(self) -> None:
        self.on = False
        self.nanoseconds = {label: 0 for label, _, _ in PARTS}

    def install(self) -> None:
        for label, module, path in PARTS:
            owner = importlib.import_module(module)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            setattr(owner, name, self._timed(label, getattr(owner, name)))

    def _timed(self, label: str, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            if not self.on:
                return function(*args, **kwargs)
            started = time.thread_time_ns()
            try:
                return function(*args, **kwargs)
            finally:
                self.nanoseconds[label] += time.thread_time_ns() - started

        return timed


def _child(variant: str) -> None:
    """Serve the parent's rounds: one line in ("go N"), one JSON line out per round."""
    # Django's log lines go where gunicorn's would (a file), the figures to the parent's pipe.
    figures = os.fdopen(os.dup(1), "w")
    log = os.open(os.environ["AMEIDE_ATTRIBUTION_LOG"], os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    import django
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections

    from bench.cpu import cpu_seconds

    django.setup()
    timer = _Parts() if variant == "full-parts" else None
    if timer is not None:
        timer.install()
        gc.disable()
    collector = {"ns": 0, "started": 0}

    def on_collect(phase: str, _info: dict) -> None:
        if phase == "start":
            collector["started"] = time.thread_time_ns()
        else:
            collector["ns"] += time.thread_time_ns() - collector["started"]

    gc.callbacks.append(on_collect)
    handler = WSGIHandler()
    authorization = os.environ.get("AMEIDE_ATTRIBUTION_AUTH", "")
    status: list[str] = []

    def start_response(line, headers, exc_info=None):
        status[:] = [line]

    def request() -> None:
        response = handler(_environ(authorization), start_response)
        body = b"".join(response)
        response.close()  # request_finished, as a WSGI server sends it
        if not status[0].startswith("200"):
            raise SystemExit(f"{variant}: {status[0]} {body[:300]!r}")  # in its log

    for _ in range(WARMUP_REQUESTS):
        request()
    for line in sys.stdin:
        count = int(line.split()[1])
        connections["default"].ensure_connection()  # CONN_MAX_AGE may have closed it
        pid = connections["default"].connection.info.backend_pid
        backend_before = cpu_seconds(pid)
        collector["ns"] = 0
        if timer is not None:
            timer.nanoseconds = dict.fromkeys(timer.nanoseconds, 0)
            timer.on = True
        # The kernel's share (system time, in clock ticks: 10 ms over a round of hundreds of
        # requests) is where a round trip's wake-ups land (docs/benchmarks.md, stop 28).
        system_before = os.times().system
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for _ in range(count):
            request()
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        system = os.times().system - system_before
        if timer is not None:
            timer.on = False
        # A round in which CONN_MAX_AGE replaced the connection has no backend figure: what the
        # first backend spent went with it (subtracting across two backends gave negatives).
        connections["default"].ensure_connection()
        same = connections["default"].connection.info.backend_pid == pid
        backend = cpu_seconds(pid) - backend_before if same else None
        per = 1e6 / count
        result = {
            "worker": cpu * per,
            "system": system * per,
            "backend": None if backend is None else backend * per,
            "wall": wall * per,
            "gc": collector["ns"] / 1000 / count,
        }
        if timer is not None:
            result["parts"] = {k: v / 1000 / count for k, v in timer.nanoseconds.items()}
        figures.write(json.dumps(result) + "\n")
        figures.flush()


def _median_iqr(values: list[float]) -> str:
    s = summary(values)
    return f"{s['median']:,.0f} ({s['q1']:,.0f}-{s['q3']:,.0f})"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        _child(args.child)
        return 0
    from bench.environment import configure

    configure(full=False, settings_module="bench.settings")
    import django

    django.setup()
    from bench.dataset import SERVED_RANK, dataset_specs, ensure_dataset
    from bench.issuer import BenchIssuer
    from bench.pairs_http import limits_store, server_env
    from tenants.models import Tenant

    dataset = ensure_dataset(
        owner_alias="owner", runtime_alias="default", spec=dataset_specs(full=False)["main"]
    )
    tenant_id, size = dataset.tenant_at_rank(SERVED_RANK)
    tenant = Tenant.objects.using("owner").get(pk=tenant_id)
    issuer = BenchIssuer()
    issuer.serve()
    children: dict[str, subprocess.Popen] = {}
    with tempfile.TemporaryDirectory(prefix="ameide-attribution-") as workdir:
        try:
            token = issuer.mint(tenant_external_id=tenant.external_id, subject="bench-attribution")
            env = server_env(issuer)
            env["REDIS_URL"], store = limits_store()
            static = Path(workdir, "static.json")
            static.write_text("{}")
            log = Path(workdir, "django.log")
            log.touch()
            variants = {v: s for v, s in VARIANTS.items() if args.parts or v != "full-parts"}
            for variant, settings_module in variants.items():
                children[variant] = subprocess.Popen(
                    [sys.executable, "-m", "bench.attribution", "--child", variant],
                    env={
                        **env,
                        "DJANGO_SETTINGS_MODULE": settings_module,
                        "PGAPPNAME": f"ameide-attribution-{variant}",
                        "AMEIDE_ATTRIBUTION_LOG": str(log),
                        "AMEIDE_ATTRIBUTION_AUTH": "" if variant == "off" else f"Bearer {token}",
                        "AMEIDE_BENCH_TENANCY_OFF": "1" if variant == "off" else "",
                        "AMEIDE_BENCH_LIMITS_OFF": "1" if variant == "limits-off" else "",
                        "AMEIDE_BENCH_TENANT_ID": str(tenant_id),
                        "AMEIDE_BENCH_STATIC_BODY": str(static),
                    },
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            samples: dict[str, list[dict]] = {variant: [] for variant in variants}
            names = list(variants)
            for index in range(args.rounds):
                for variant in round_order(names, index):
                    child = children[variant]
                    child.stdin.write(f"go {args.requests}\n")
                    child.stdin.flush()
                    reply = child.stdout.readline()
                    if not reply:
                        raise SystemExit(f"{variant} stopped:\n{log.read_text()[-3000:]}")
                    samples[variant].append(json.loads(reply))
        finally:
            for child in children.values():
                if child.stdin:
                    child.stdin.close()
                child.wait(timeout=30)
            issuer.stop()
    _report(samples, args=args, size=size, store=store)
    return 0


def _report(samples: dict[str, list[dict]], *, args, size: int, store: str) -> None:
    total = {
        v: [s["worker"] + s["backend"] for s in runs if s["backend"] is not None]
        for v, runs in samples.items()
    }
    base = statistics.median(total["off"])
    replaced = sum(s["backend"] is None for runs in samples.values() for s in runs)
    print(
        f"GET {PATH} in-process, tenant with {size:,} rows, {store}; {args.rounds} interleaved "
        f"rounds of {args.requests} requests; us per request, median (IQR)"
        + (
            f"; {replaced} round(s) whose connection CONN_MAX_AGE replaced count in worker CPU only"
            if replaced
            else ""
        )
        + "\n"
    )
    print(
        "| variant | worker CPU | of which in the kernel | backend CPU | total | vs off | "
        "garbage collector |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for variant, runs in samples.items():
        if variant == "full-parts":
            continue
        cells = [
            _median_iqr([s[key] for s in runs if s[key] is not None])
            for key in ("worker", "system", "backend", "gc")
        ]
        ratio = statistics.median(total[variant]) / base
        print(
            f"| {variant} | {cells[0]} | {cells[1]} | {cells[2]} | {_median_iqr(total[variant])} "
            f"| {ratio:.3f}x | {cells[3]} |"
        )
    if args.parts:
        print("\n| part of `full` (full-parts: collector paused) | thread CPU, us per request |")
        print("| --- | --- |")
        for label, _, _ in PARTS:
            values = [s["parts"][label] for s in samples["full-parts"]]
            print(f"| {label} | {_median_iqr(values)} |")


if __name__ == "__main__":
    sys.exit(main())
