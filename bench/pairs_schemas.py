"""Pair 7: shared schema (this project) against schema-per-tenant (django-tenants).

django-tenants is installed only into bench/.venv-dt, created here on first use, and runs a
throwaway project (bench/schema_per_tenant). Our side is a bench-only TenantModel app
(bench/shared_schema) on the real tenancy core. Both get fresh databases on the same server;
worker processes (bench/schema_worker.py) time provisioning and `migrate` of one new
migration (0001 -> 0002, an added nullable column) in-process, alternating between designs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.db import ProgrammingError, connections
from psycopg.errors import InsufficientPrivilege

from bench.environment import BENCH_DIR, PROJECT_ROOT, database_names
from bench.measure import Row, Target, interleave

VENV = BENCH_DIR / ".venv-dt"
REQUIREMENTS = ("django-tenants>=3.7,<5", "Django>=5.2,<5.3", "psycopg[binary]>=3.2")
SMALL = 10


@dataclass(frozen=True)
class SchemaPlan:
    rounds: int
    large: int  # tenants at the second migrate measurement (1,000 in full mode)

    @property
    def batch(self) -> int:
        return (self.large - SMALL) // self.rounds


def ensure_venv(log) -> Path:
    """bench/.venv-dt with django-tenants, rebuilt when REQUIREMENTS change."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-requirements"
    wanted = "\n".join(REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True, stdout=log, stderr=log)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *REQUIREMENTS],
        check=True,
        stdout=log,
        stderr=log,
    )
    stamp.write_text(wanted)
    return python


class Worker:
    """One schema_worker.py process; `call` sends a request and returns its reply."""

    def __init__(self, *, python: str, design: str, env: dict, cwd: Path, log) -> None:
        self.design = design
        self.process = subprocess.Popen(
            [python, str(BENCH_DIR / "schema_worker.py"), design],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )

    def call(self, op: str, **args) -> dict:
        self.process.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.design} worker exited (see bench/results/pair7.log)")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.design} worker: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _recreate_database(name: str) -> None:
    connection = connections["owner"]
    with connection._nodb_cursor() as cursor:
        quoted = connection.ops.quote_name(name)
        cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {quoted}")


def _drop_database(name: str) -> None:
    connection = connections["owner"]
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)} WITH (FORCE)")


def _shared_env(name: str) -> dict:
    from bench.environment import _with_database

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings_p7",
        "AMEIDE_DB_NAME": name,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    for variable in ("DATABASE_URL", "DATABASE_OWNER_URL"):
        if env.get(variable):
            env[variable] = _with_database(env[variable], name)
    return env


def _schemas_env(name: str) -> dict:
    owner = connections["owner"].settings_dict
    options = owner.get("OPTIONS", {})
    # The embedded server's socket directory and port arrive as OPTIONS (libpq parameters).
    host = owner.get("HOST") or options.get("host") or ""
    port = owner.get("PORT") or options.get("port") or ""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "DJANGO_SETTINGS_MODULE": "dt_settings",
        "PYTHONPATH": str(BENCH_DIR / "schema_per_tenant"),
        "BENCH_P7_DB_NAME": name,
        "BENCH_P7_DB_USER": owner["USER"],
        "BENCH_P7_DB_PASSWORD": owner.get("PASSWORD") or "",
        "BENCH_P7_DB_HOST": str(host),
        "BENCH_P7_DB_PORT": str(port),
    }


def settle_server() -> bool:
    """Write out what the previous operation left in the server's buffers, before a timed one.

    The designs alternate on one server, and django-tenants' batches are seconds of DDL: the
    checkpointer then flushes their catalog pages during the short batch of ours that follows
    (at 1,000 tenants, up to 3.5 ms a tenant instead of 1.0). A CHECKPOINT, not timed, before
    every timed call of either design charges each with its own writes only. False where the
    owner may not checkpoint (neither superuser nor pg_checkpoint): the row then says so."""
    try:
        with connections["owner"]._nodb_cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except ProgrammingError as error:
        if not isinstance(error.__cause__, InsufficientPrivilege):
            raise
        return False
    return True


def _migration_round(worker: Worker):
    """Back to 0001 (not timed), then the new migration 0002 (timed)."""

    def run() -> float:
        worker.call("migrate", target="0001")
        settle_server()
        return worker.call("migrate", target="0002")["seconds"]

    return run


def compare(*, plan: SchemaPlan, log_path: Path, progress) -> list[Row]:
    names = database_names(full=bool(os.environ.get("AMEIDE_BENCH_FULL")))
    with open(log_path, "ab") as log:
        python = ensure_venv(log)
        databases = {
            "shared": names["ours_p7"],
            "shared10": names["ours_p7"] + "_10",
            "schemas": names["schemas_p7"],
        }
        for name in databases.values():
            _recreate_database(name)
        workers = {
            "shared": Worker(
                python=sys.executable,
                design="shared",
                env=_shared_env(databases["shared"]),
                cwd=PROJECT_ROOT,
                log=log,
            ),
            "shared10": Worker(
                python=sys.executable,
                design="shared",
                env=_shared_env(databases["shared10"]),
                cwd=PROJECT_ROOT,
                log=log,
            ),
            "schemas": Worker(
                python=str(python),
                design="schemas",
                env=_schemas_env(databases["schemas"]),
                cwd=BENCH_DIR / "schema_per_tenant",
                log=log,
            ),
        }
        try:
            return _measure(plan=plan, workers=workers, progress=progress)
        finally:
            for worker in workers.values():
                worker.close()
            # Rebuilt on every run anyway; the 1,000 schemas would only weigh on the server.
            for name in databases.values():
                _drop_database(name)


def _measure(*, plan: SchemaPlan, workers: dict[str, Worker], progress) -> list[Row]:
    shared, shared10, schemas = workers["shared"], workers["shared10"], workers["schemas"]
    for worker in workers.values():
        worker.call("setup")
        worker.call("provision", start=1, count=SMALL)
    progress(f"  pair 7: migrate at {SMALL} tenants")
    at_small = interleave(
        {"shared": _migration_round(shared10), "schemas": _migration_round(schemas)},
        rounds=plan.rounds,
    )

    progress(f"  pair 7: provisioning up to {plan.large} tenants")
    next_number = {"shared": SMALL + 1, "schemas": SMALL + 1}
    settled: list[bool] = []

    def provision(name: str):
        def run() -> float:
            settled.append(settle_server())
            reply = workers[name].call("provision", start=next_number[name], count=plan.batch)
            next_number[name] += plan.batch
            return reply["seconds"] / plan.batch

        return run

    # No warm-up round here: every tenant provisioned counts towards `large`.
    provisioning = interleave(
        {"shared": provision("shared"), "schemas": provision("schemas")},
        rounds=plan.rounds,
        warmup=0,
    )
    for name in ("shared", "schemas"):
        missing = plan.large - (next_number[name] - 1)
        if missing > 0:
            workers[name].call("provision", start=next_number[name], count=missing)
    tenants = {name: workers[name].call("count")["tenants"] for name in workers}

    progress(f"  pair 7: migrate at {plan.large} tenants")
    at_large = interleave(
        {"shared": _migration_round(shared), "schemas": _migration_round(schemas)},
        rounds=plan.rounds,
        warmup=0,  # every worker already ran migrations at SMALL tenants
    )
    # Ours at both sizes on their own, away from django-tenants' bursts of DDL on the server.
    flat = interleave(
        {"large": _migration_round(shared), "small": _migration_round(shared10)},
        rounds=plan.rounds,
    )
    full_scale = plan.large >= 1000
    scale = "" if full_scale else f" (quick mode: {plan.large} tenants, not 1,000)"
    total = {name: sum(samples) * plan.batch for name, samples in provisioning.items()}
    return [
        Row(
            pair="7",
            title=f"provisioning one tenant, batches of {plan.batch} up to {plan.large}{scale}",
            ours_label="shared schema",
            base_label="django-tenants",
            unit="ms",
            ours=provisioning["shared"],
            base=provisioning["schemas"],
            target=Target(high=0.01),
            note=(
                f"provisioning {plan.batch * plan.rounds} tenants took {total['shared']:.2f}s "
                f"here and {total['schemas']:.1f}s with django-tenants; tenants at the end: "
                f"{tenants}; "
                + (
                    "a CHECKPOINT before each batch"
                    if all(settled)
                    else "no CHECKPOINT between batches (the owner may not)"
                )
            ),
            extra={"tenants": tenants},
        ),
        Row(
            pair="7b",
            title=f"`migrate`, one new migration, at {SMALL} tenants",
            ours_label="shared schema",
            base_label="django-tenants",
            unit="ms",
            ours=at_small["shared"],
            base=at_small["schemas"],
        ),
        Row(
            pair="7c",
            title=f"`migrate`, one new migration, at {plan.large} tenants{scale}",
            ours_label="shared schema",
            base_label="django-tenants",
            unit="ms",
            ours=at_large["shared"],
            base=at_large["schemas"],
            # The target is stated at 1,000 tenants; quick mode reports without judging.
            target=Target(high=0.01) if full_scale else Target(),
            note="" if full_scale else "the >= 100x target is judged at 1,000 tenants (FULL=1)",
        ),
        Row(
            pair="7d",
            title=f"ours flat: `migrate` at {plan.large} vs at {SMALL} tenants (interleaved)",
            ours_label=f"{plan.large}",
            base_label=f"{SMALL}",
            unit="ms",
            ours=flat["large"],
            base=flat["small"],
            target=Target(high=1.25),
        ),
        Row(
            pair="7e",
            title=f"django-tenants: `migrate` at {plan.large} vs at {SMALL} tenants",
            ours_label=f"{plan.large}",
            base_label=f"{SMALL}",
            unit="ms",
            ours=at_large["schemas"],
            base=at_small["schemas"],
            note="measured in two phases (before and after provisioning), not interleaved",
        ),
    ]
