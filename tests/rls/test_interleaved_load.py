"""Concurrent interleaved-tenant load through the ORM: several threads, each with its own
database session, switch tenant at every step and write, update, read and try to reach another
tenant's rows; nothing may be seen or written in the wrong tenant, and every acknowledged write
must be there afterwards (THREATS 3, 31). Runs on one server (`make test`) and on a Citus
cluster (`make test-citus`), where each step's statements reach the workers through the
coordinator and several tenants share a shard. The server-level form of this load (gunicorn,
requests, sessions and tokens) is tests/rls/test_rls_servers.py.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from tenants.context import tenant_context
from tenants.models import Tenant
from tests.rls.support import COMMITTED, owner_execute
from workflows.models import Workflow, WorkflowRun

pytestmark = COMMITTED

TENANTS, THREADS, STEPS = 6, 6, 40


@dataclass
class Tally:
    """What the threads did and found; shared, so changed under its lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: Counter = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Acknowledged writes: workflow id -> (tenant id, name, description last written).
    written: dict[int, tuple[int, str, str]] = field(default_factory=dict)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def mismatch(self, text: str) -> None:
        with self.lock:
            self.mismatches.append(text)

    def written_ids(self, *, tenant_id: int, prefix: str = "") -> list[int]:
        with self.lock:
            return [
                pk
                for pk, (t, name, _) in self.written.items()
                if t == tenant_id and name.startswith(prefix)
            ]


def marker(tenant_id: int) -> str:
    """Every name written under a tenant starts with it, so a row in the wrong tenant shows."""
    return f"t{tenant_id}-"


def one_step(*, tenant: Tenant, other: Tenant, worker: int, step: int, tally: Tally) -> None:
    """Under `tenant`, in one transaction: write a workflow and a run, update one of this
    thread's earlier rows of the tenant, read through the ORM and raw SQL, and aim an update
    and a run at `other`'s rows."""
    mine = marker(tenant.pk)
    with tenant_context(tenant), transaction.atomic():
        workflow = Workflow.objects.create(name=f"{mine}w{worker}-{step}")
        WorkflowRun.objects.create(workflow=workflow, input={"step": step})
        earlier = tally.written_ids(tenant_id=tenant.pk, prefix=f"{mine}w{worker}-")
        updated = {}
        if earlier:
            pk = random.choice(earlier)
            description = f"{mine}updated by {worker} at {step}"
            if Workflow.objects.filter(pk=pk).update(description=description) != 1:
                tally.mismatch(f"{tenant.pk}: own row {pk} not updated")
            updated[pk] = description
        names = list(Workflow.objects.values_list("tenant_id", "name"))
        if not names or any(t != tenant.pk or not n.startswith(mine) for t, n in names):
            tally.mismatch(f"{tenant.pk}: ORM saw {sorted({t for t, _ in names})}")
        with connection.cursor() as cursor:
            # No WHERE: only the policies decide, on every shard of a cluster.
            cursor.execute("SELECT DISTINCT tenant_id FROM workflows_workflow")
            raw = sorted(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT DISTINCT tenant_id FROM workflows_workflowrun")
            raw_runs = sorted(row[0] for row in cursor.fetchall())
        if raw != [tenant.pk] or raw_runs != [tenant.pk]:
            tally.mismatch(f"{tenant.pk}: raw SQL saw {raw} and runs of {raw_runs}")
        runs = WorkflowRun.objects.select_related("workflow")
        if any(r.tenant_id != tenant.pk or not r.workflow.name.startswith(mine) for r in runs):
            tally.mismatch(f"{tenant.pk}: a run or its workflow of another tenant")
        theirs = tally.written_ids(tenant_id=other.pk)
        if theirs:
            target = random.choice(theirs)
            if Workflow.objects.filter(pk=target).update(description=f"{mine}stolen") != 0:
                tally.mismatch(f"{tenant.pk}: updated {other.pk}'s row {target}")
            if Workflow.objects.filter(pk=target).exists():
                tally.mismatch(f"{tenant.pk}: sees {other.pk}'s row {target}")
            tally.count("cross-tenant attempts")
    # Committed: acknowledged.
    with tally.lock:
        tally.written[workflow.pk] = (tenant.pk, workflow.name, "")
        for pk, description in updated.items():
            tally.written[pk] = (*tally.written[pk][:2], description)
    tally.count("steps")


def worker_thread(*, worker: int, tenants: list[Tenant], tally: Tally) -> None:
    rng = random.Random(worker)
    try:
        for step in range(STEPS):
            tenant, other = rng.sample(tenants, 2)
            one_step(tenant=tenant, other=other, worker=worker, step=step, tally=tally)
    except Exception as exc:  # reported by the test, not lost with the thread
        with tally.lock:
            tally.errors.append(f"worker {worker}: {exc!r}")
    finally:
        connection.close()


def shards_and_nodes(tenants: list[Tenant]) -> tuple[list[int], set[int]]:
    """On Citus: the workflows shard of each tenant, and the nodes that hold those shards."""
    rows = owner_execute(
        "SELECT get_shard_id_for_distribution_column('workflows_workflow', t) FROM unnest(%s) t",
        [[t.pk for t in tenants]],
    )
    shards = [shard for (shard,) in rows]
    nodes = owner_execute(
        "SELECT DISTINCT nodeport FROM citus_shards WHERE shardid = ANY(%s)", [shards]
    )
    return shards, {port for (port,) in nodes}


def spread(tenants: list[Tenant]) -> bool:
    """One server: always. Citus: the tenants' rows on two workers at least, and two tenants
    sharing a shard (only the policies keep them apart there)."""
    if not settings.TENANCY_CITUS:
        return True
    shards, nodes = shards_and_nodes(tenants)
    return len(nodes) >= 2 and len(set(shards)) < len(shards)


def new_tenant(number: int) -> Tenant:
    return Tenant.objects.create(
        slug=f"load-{number}", external_id=f"load-{number}", name=f"Load {number}"
    )


def test_threads_switching_tenants_see_and_write_only_their_tenant():
    tenants = [new_tenant(i) for i in range(TENANTS)]
    while not spread(tenants) and len(tenants) < 4 * TENANTS:
        tenants.append(new_tenant(len(tenants)))  # where the hash puts tenant ids is fixed
    assert spread(tenants)
    tally = Tally()
    threads = [
        threading.Thread(
            target=worker_thread, kwargs={"worker": w, "tenants": tenants, "tally": tally}
        )
        for w in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.errors == []
    assert tally.mismatches == []
    assert tally.counts["steps"] == THREADS * STEPS
    assert tally.counts["cross-tenant attempts"] > THREADS * STEPS // 2
    # What is really there, read as the owner (no policy): every acknowledged write in its
    # tenant with its last description, and no other row.
    rows = owner_execute("SELECT id, tenant_id, name, description FROM workflows_workflow")
    found = {pk: (tenant_id, name, description) for pk, tenant_id, name, description in rows}
    assert found == tally.written
    assert all(name.startswith(marker(tenant_id)) for tenant_id, name, _ in found.values())
    assert all(d == "" or d.startswith(marker(t)) for t, _, d in found.values())
    runs = owner_execute(
        "SELECT r.tenant_id, w.tenant_id FROM workflows_workflowrun r "
        "JOIN workflows_workflow w ON w.tenant_id = r.tenant_id AND w.id = r.workflow_id"
    )
    assert len(runs) == THREADS * STEPS and all(a == b for a, b in runs)
    # Every tenant was written by several threads, so sessions really switched tenants.
    assert len({t for t, _, _ in found.values()}) == len(tenants)
