"""`python -m bench --citus` (`make bench CITUS=1`): the same reads on a Citus cluster and on
one server, and the list query at 10,000 against 1,000 tenants on the cluster.

Three databases on the cluster's coordinator server (AMEIDE_CITUS_PORT, scripts/citus-cluster):
the 10,000-tenant and 1,000-tenant datasets as Citus databases, distributed by `tenants
distribute`, and the 10,000-tenant dataset again in a database without the Citus extension
(same server process, binaries and settings: "one server"). Both sides run the tenancy
backend's Citus mode (AMEIDE_CITUS=true: the scope in a transaction with SET LOCAL), so a
ratio is what the cluster adds: routing through the coordinator to a worker, and the policy in
the form Citus accepts (docs/citus.md).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable

from django.core.management import call_command
from django.db import DatabaseError, connections, transaction

from bench.dataset import (
    SERVED_RANK,
    Dataset,
    DatasetSpec,
    generate,
    recreate_database,
    stored_spec,
)
from bench.environment import PROJECT_ROOT
from bench.measure import Row, Target, calibrate, interleave, per_op_seconds
from bench.pairs_database import NEWEST, PAGE, Plan, _pks, _tenant
from tenants.citus.distribute import tenants_distribute
from tenants.context import tenant_context
from tenants.db.roles import ensure_roles
from workflows import selectors
from workflows.models import Workflow

# Kept in bench_dataset beside the spec: a one-server dataset is not reused as a cluster's.
CITUS_MARK = {"citus": True}


def ensure_cluster_dataset(*, owner_alias: str, runtime_alias: str, spec: DatasetSpec) -> Dataset:
    """Reuse the cluster database if it holds `spec` distributed, else build it: a Citus
    database on every node (scripts/citus-cluster createdb), migrate, the rows generated on
    the coordinator, then `tenants distribute` moves them into the shards."""
    started = time.perf_counter()
    stored = stored_spec(owner_alias=owner_alias)
    if stored == {**spec.as_dict(), **CITUS_MARK}:
        return Dataset(alias=owner_alias, spec=spec, reused=True, build_seconds=0.0)
    name = connections[owner_alias].settings_dict["NAME"]
    for alias in (owner_alias, runtime_alias):
        connections[alias].close()
    for command in ("dropdb", "createdb"):
        subprocess.run(
            [str(PROJECT_ROOT / "scripts" / "citus-cluster"), command, name],
            check=True,
            stdout=subprocess.DEVNULL,
            env=os.environ,
        )
    ensure_roles(using=owner_alias)
    call_command("migrate", database=owner_alias, interactive=False, verbosity=0)
    generate(owner_alias=owner_alias, spec=spec)
    tenants_distribute(using=owner_alias)
    with connections[owner_alias].cursor() as cursor:
        cursor.execute(
            "UPDATE bench_dataset SET params = params || %s::jsonb", [json.dumps(CITUS_MARK)]
        )
        cursor.execute("VACUUM (ANALYZE)")
    return Dataset(
        alias=owner_alias, spec=spec, reused=False, build_seconds=time.perf_counter() - started
    )


def ensure_one_server_dataset(*, owner_alias: str, runtime_alias: str, spec: DatasetSpec):
    """The same dataset in a plain database of the coordinator's server (no Citus)."""
    started = time.perf_counter()
    if stored_spec(owner_alias=owner_alias) == spec.as_dict():
        return Dataset(alias=owner_alias, spec=spec, reused=True, build_seconds=0.0)
    recreate_database(owner_alias=owner_alias, runtime_alias=runtime_alias)
    generate(owner_alias=owner_alias, spec=spec)
    return Dataset(
        alias=owner_alias, spec=spec, reused=False, build_seconds=time.perf_counter() - started
    )


def _page(alias: str, *, bare: bool = False) -> tuple[Callable[[], list], bool]:
    """The list endpoint's query, or, where the cluster refuses it (or `bare`), the same
    without the owner join (docs/citus.md: `select_related("owner")` fails on Citus); and
    whether it is the bare one."""
    full = selectors.workflow_list().using(alias).order_by(*NEWEST)
    plain = Workflow.objects.using(alias).order_by(*NEWEST)
    if not bare:
        try:
            with transaction.atomic(using=alias):
                list(full[:PAGE])
            return (lambda: list(full[:PAGE])), False
        except DatabaseError:
            pass
    return (lambda: list(plain[:PAGE])), True


def _query_note(bare: bool) -> str:
    if bare:
        return (
            "Workflow.objects.order_by(newest)[:50] without select_related('owner'): the cluster "
            "refuses workflow_list()'s join ('failed to postpone qual containing lateral "
            "reference', docs/citus.md), so both sides run it without"
        )
    return "workflow_list() (select_related owner), as the API runs it"


def cluster_vs_one_server(*, cluster: Dataset, one: Dataset, plan: Plan) -> list[Row]:
    """C1: PK read in autocommit; C2: the list query (50 newest) in a transaction, as the API
    runs it. Cluster (`default`) against one server (`one`), same tenant rank, same rows."""
    sides = {}
    bare = False
    for key, runtime, dataset in (("cluster", "default", cluster), ("one", "one", one)):
        tenant_id, size = dataset.tenant_at_rank(SERVED_RANK)
        tenant = _tenant(runtime, tenant_id)
        pks = itertools.cycle(_pks(alias=dataset.alias, tenant_id=tenant_id))
        manager = Workflow.objects.db_manager(runtime)

        def get(manager=manager, pks=pks):
            return manager.get(pk=next(pks))

        with tenant_context(tenant):
            # The one server runs the query the cluster could run (the cluster goes first).
            page, bare = _page(runtime, bare=bare)
            with transaction.atomic(using=runtime):
                assert len(page()) == PAGE
        sides[key] = (tenant, get, page, runtime, size)

    def batch(key: str, what: str, count: int) -> Callable[[], float]:
        tenant, get, page, runtime, _ = sides[key]

        def run() -> float:
            with tenant_context(tenant):
                if what == "pk":
                    return per_op_seconds(get, count=count)
                with transaction.atomic(using=runtime):
                    return per_op_seconds(page, count=count)

        return run

    tenant, get, page, runtime, size = sides["cluster"]
    with tenant_context(tenant):
        pk_count = calibrate(get, seconds=plan.batch_seconds)
        with transaction.atomic(using=runtime):
            list_count = calibrate(page, seconds=plan.batch_seconds)
    pk = interleave({k: batch(k, "pk", pk_count) for k in ("cluster", "one")}, rounds=plan.rounds)
    listing = interleave(
        {k: batch(k, "list", list_count) for k in ("cluster", "one")}, rounds=plan.rounds
    )
    query = _query_note(bare)
    return [
        Row(
            pair="C1",
            title="PK read in autocommit, Workflow.objects.get: Citus cluster (coordinator + 2 "
            "workers) vs the same data on one server",
            ours_label="cluster",
            base_label="one",
            unit="us",
            ours=pk["cluster"],
            base=pk["one"],
            extra={"calls_per_batch": pk_count},
        ),
        Row(
            pair="C2",
            title=f"workflows list (50 newest of a {size:,}-row tenant, in a transaction): "
            "cluster vs one server",
            ours_label="cluster",
            base_label="one",
            unit="us",
            ours=listing["cluster"],
            base=listing["one"],
            note=f"C1/C2's list query: {query}",
            extra={"calls_per_batch": list_count, "query": query},
        ),
    ]


def cluster_tenant_count(*, main: Dataset, small: Dataset, plan: Plan) -> list[Row]:
    """C3: the list query at 10,000 against 1,000 tenants, both on the cluster (pair 4's
    question on Citus: is it flat in the tenant count?)."""
    runs = {}
    for key, runtime, dataset in (("many", "default", main), ("few", "runtime_1k", small)):
        tenant_id, size = dataset.tenant_at_rank(SERVED_RANK)
        tenant = _tenant(runtime, tenant_id)
        with tenant_context(tenant):
            page, bare = _page(runtime, bare=key == "few" and runs["many"][4])
        runs[key] = (tenant, page, runtime, size, bare)

    def batch(key: str, count: int) -> Callable[[], float]:
        tenant, page, runtime, _, _ = runs[key]

        def run() -> float:
            with tenant_context(tenant), transaction.atomic(using=runtime):
                return per_op_seconds(page, count=count)

        return run

    tenant, page, runtime, _, bare = runs["many"]
    with tenant_context(tenant), transaction.atomic(using=runtime):
        count = calibrate(page, seconds=plan.batch_seconds)
    samples = interleave({k: batch(k, count) for k in ("many", "few")}, rounds=plan.rounds)
    return [
        Row(
            pair="C3",
            title=f"list query on the cluster at {main.spec.tenants:,} vs {small.spec.tenants:,} "
            f"tenants, {main.spec.rows:,} rows each (rank {SERVED_RANK}: "
            f"{runs['many'][3]:,} and {runs['few'][3]:,} rows)",
            ours_label=f"{main.spec.tenants // 1000}k",
            base_label=f"{small.spec.tenants // 1000}k",
            unit="us",
            ours=samples["many"],
            base=samples["few"],
            target=Target(low=0.90, high=1.10),
            note=f"C3's query: {_query_note(bare)}",
            extra={"calls_per_batch": count},
        )
    ]
