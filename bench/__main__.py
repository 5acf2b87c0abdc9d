"""`python -m bench [--full] [--pairs 1,2,...] [--citus]`: run the pairs, print the table, save
the figures. `--citus` runs the Citus pairs instead (bench.pairs_citus), against the cluster
that DATABASE_URL names (`make bench CITUS=1` starts one)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback

from bench.environment import RESULTS_DIR, configure


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="millions of rows, more rounds")
    parser.add_argument(
        "--citus",
        action="store_true",
        help="the Citus pairs C1-C3 on the cluster DATABASE_URL names (AMEIDE_CITUS=true)",
    )
    parser.add_argument(
        "--pairs",
        default="1,2,3,4,5,6,7,8,9,10,11,12",
        help="comma-separated pair numbers (default: all)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="interleaved rounds of the in-process pairs and pair 7 (at least 5; default: 9 "
        "for pairs 1-5 and 5 for pair 7; FULL: 15 and 5)",
    )
    parser.add_argument(
        "--output", default=str(RESULTS_DIR / "latest.json"), help="where the raw figures go"
    )
    parser.add_argument(
        "--http-rounds",
        type=int,
        help="interleaved wrk rounds of pairs 6, 10 and 12 (at least 20; default 20, FULL: 30)",
    )
    parser.add_argument(
        "--http-seconds",
        type=float,
        default=5.0,
        help="length of a round of pairs 6, 10 and 12 (at least 5)",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 5:
        parser.error("--rounds must be at least 5")
    if args.http_rounds is not None and args.http_rounds < 20:
        parser.error("--http-rounds must be at least 20")
    if args.http_seconds < 5:
        parser.error("--http-seconds must be at least 5")
    args.rounds_by_kind = {
        # Pair 7 stays at 5: one django-tenants round at 1,000 tenants takes minutes.
        "process": args.rounds or (15 if args.full else 9),
        "http": args.http_rounds or (30 if args.full else 20),
        "schemas": args.rounds or 5,
    }
    args.pairs = {p.strip() for p in args.pairs.split(",") if p.strip()}
    return args


def _machine() -> dict[str, object]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                "",
            )
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _citus_jobs(args, *, plan, specs) -> tuple[dict, dict]:
    """The datasets and pairs of --citus (bench.pairs_citus): the cluster's two datasets and
    the one-server copy of the large one."""
    from bench import pairs_citus

    datasets = {}
    builders = (
        ("main", pairs_citus.ensure_cluster_dataset, "owner", "default", specs["main"]),
        ("small", pairs_citus.ensure_cluster_dataset, "owner_1k", "runtime_1k", specs["small"]),
        ("one", pairs_citus.ensure_one_server_dataset, "owner_one", "one", specs["main"]),
    )
    for key, build, owner, runtime, spec in builders:
        t0 = time.perf_counter()
        datasets[key] = build(owner_alias=owner, runtime_alias=runtime, spec=spec)
        what = "reused" if datasets[key].reused else "built"
        _log(
            f"  dataset {key}: {spec.tenants:,} tenants, {spec.rows:,} rows, "
            f"{what} in {time.perf_counter() - t0:.1f}s"
        )
    jobs = {
        "C1": (
            "cluster vs one server: PK read and list",
            lambda: pairs_citus.cluster_vs_one_server(
                cluster=datasets["main"], one=datasets["one"], plan=plan
            ),
        ),
        "C3": (
            "tenant count on the cluster",
            lambda: pairs_citus.cluster_tenant_count(
                main=datasets["main"], small=datasets["small"], plan=plan
            ),
        ),
    }
    return datasets, jobs


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    load_at_start = os.getloadavg()[0]
    if args.citus:
        # Databases of their own on the cluster's server, apart from one-server runs' datasets.
        os.environ.setdefault("AMEIDE_BENCH_DB", "ameide_bench_citus")
        os.environ["AMEIDE_CITUS"] = "true"
    names = configure(
        full=args.full, settings_module="bench.settings_citus" if args.citus else "bench.settings"
    )
    if args.citus:
        os.environ["AMEIDE_BENCH_DB_ONE"] = names["main"] + "_one"
        args.pairs = {"C1", "C3"}
    started = time.perf_counter()

    import django

    django.setup()

    from django.db import connections

    from bench import (
        pairs_database,
        pairs_http,
        pairs_move,
        pairs_neighbours,
        pairs_schemas,
        pairs_tokens,
        pairs_worker,
    )
    from bench.dataset import dataset_specs, ensure_dataset
    from bench.measure import Failure, markdown_table

    mode = "full" if args.full else "quick"
    rounds = args.rounds_by_kind
    plan = pairs_database.Plan(rounds=rounds["process"], batch_seconds=0.8 if args.full else 0.3)
    http_plan = pairs_http.HttpPlan(rounds=rounds["http"], seconds=args.http_seconds)
    schema_plan = pairs_schemas.SchemaPlan(
        rounds=rounds["schemas"], large=1000 if args.full else 100
    )
    os.makedirs(RESULTS_DIR, exist_ok=True)
    specs = dataset_specs(full=args.full)
    _log(f"bench ({mode}): databases {names['main']} and {names['small']}")
    datasets = {}
    citus_datasets, citus_jobs = (
        _citus_jobs(args, plan=plan, specs=specs) if args.citus else ({}, {})
    )
    for key, owner, runtime in (
        () if args.citus else (("main", "owner", "default"), ("small", "owner_1k", "runtime_1k"))
    ):
        t0 = time.perf_counter()
        datasets[key] = ensure_dataset(owner_alias=owner, runtime_alias=runtime, spec=specs[key])
        what = "reused" if datasets[key].reused else "built"
        _log(
            f"  dataset {key}: {specs[key].tenants:,} tenants, {specs[key].rows:,} rows, "
            f"{what} in {time.perf_counter() - t0:.1f}s"
        )
    with connections["owner"].cursor() as cursor:
        cursor.execute("SHOW server_version")
        server_version = cursor.fetchone()[0]

    jobs = {
        "1": ("PK read", lambda: pairs_database.pk_read(dataset=datasets["main"], plan=plan)),
        "2": (
            "list under RLS",
            lambda: [
                *pairs_database.list_under_rls(dataset=datasets["main"], plan=plan),
                *pairs_database.list_by_member_count(dataset=datasets["main"], plan=plan),
            ],
        ),
        "3": (
            "per-request context",
            lambda: pairs_database.per_request_context(dataset=datasets["main"], plan=plan),
        ),
        "4": (
            "tenant count",
            lambda: pairs_database.tenant_count(
                main=datasets["main"], small=datasets["small"], plan=plan
            ),
        ),
        "5": ("JWT verification", lambda: pairs_tokens.verification(plan=plan)),
        "6": (
            "HTTP throughput",
            lambda: pairs_http.throughput(dataset=datasets["main"], plan=http_plan),
        ),
        "7": (
            "shared schema vs django-tenants",
            lambda: pairs_schemas.compare(
                plan=schema_plan, log_path=RESULTS_DIR / "pair7.log", progress=_log
            ),
        ),
        "8": (
            "background runs",
            lambda: pairs_worker.compare(
                dataset=datasets["main"], plan=pairs_worker.WorkerPlan(rounds=5)
            ),
        ),
        "9": (
            "noisy neighbours",
            lambda: pairs_neighbours.compare(
                dataset=datasets["main"],
                # Three sides of 10-20 s per round: 5 rounds (FULL: 10) keep it to minutes.
                plan=pairs_neighbours.NeighbourPlan(
                    rounds=10 if args.full else 5, seconds=20.0 if args.full else 10.0
                ),
            ),
        ),
        "10": (
            "cost of limits, usage and JSON logs",
            lambda: pairs_http.limits_cost(dataset=datasets["main"], plan=http_plan),
        ),
        "11": (
            "tenant move",
            # 100,000 rows in both modes (the size); FULL: more rounds.
            lambda: pairs_move.compare(plan=pairs_move.MovePlan(rounds=5 if args.full else 3)),
        ),
        "12": (
            "HTTP per placement",
            lambda: pairs_http.placements(dataset=datasets["main"], plan=http_plan),
        ),
    }
    if args.citus:
        jobs, datasets = citus_jobs, citus_datasets
    results = []
    for number, (title, job) in jobs.items():
        if number not in args.pairs:
            continue
        t0 = time.perf_counter()
        _log(f"pair {number}: {title} ...")
        try:
            results.extend(job())
        except Exception as exc:
            traceback.print_exc()
            results.append(Failure(pair=number, title=title, error=f"{type(exc).__name__}: {exc}"))
        _log(f"pair {number}: done in {time.perf_counter() - t0:.1f}s")

    table = markdown_table(results)
    machine = {
        **_machine(),
        "postgresql": server_version,
        # Other work on the machine inflates the spread; the ratios are interleaved against it.
        "load_average_1min": {"start": load_at_start, "end": os.getloadavg()[0]},
    }
    command = "make bench" + (" FULL=1" if args.full else "") + (" CITUS=1" if args.citus else "")
    header = (
        f"Mode {mode}; interleaved rounds: {rounds['process']} (pairs 1-5), {rounds['http']} "
        f"(pairs 6, 10, 12), {10 if args.full else 5} (pair 9), {rounds['schemas']} "
        f"(pair 7), {5 if args.full else 3} moves there and back (pair 11); ratio = median(ours) / "
        f"median(baseline). Machine: {machine['nproc']} cores, {machine['cpu']}, "
        f"PostgreSQL {server_version}, Python {machine['python']}; load average "
        f"{load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    )
    if args.citus:
        header = (
            f"Mode {mode}, Citus (coordinator + 2 workers, one server = a database without Citus "
            f"on the coordinator's server); interleaved rounds: {rounds['process']}; ratio = "
            f"median(ours) / median(baseline). Machine: {machine['nproc']} cores, "
            f"{machine['cpu']}, PostgreSQL {server_version}, Python {machine['python']}; load "
            f"average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
        )
    print(f"\n{header}\n\n{table}\n")
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    report = {
        "command": command,
        "mode": mode,
        "rounds": rounds,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "seconds": time.perf_counter() - started,
        "machine": machine,
        "datasets": {
            key: {**d.spec.as_dict(), "reused": d.reused, "build_seconds": d.build_seconds}
            for key, d in datasets.items()
        },
        "results": [r.as_json() for r in results],
        "table": table,
    }
    with open(args.output, "w") as out:
        json.dump(report, out, indent=2, default=str)
    _log(f"raw figures: {args.output}; total {time.perf_counter() - started:.0f}s")
    return 1 if any(isinstance(r, Failure) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
