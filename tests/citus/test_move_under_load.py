"""`tenants move SLUG --to node` on a real cluster, under load: threads write and read the
moving tenant and another one during the whole move; afterwards every acknowledged write
exists exactly once, no row is in the wrong tenant, and the tenant's shard is on the target."""

from __future__ import annotations

import collections
import json
import threading
import time

import pytest
from django.db import DatabaseError, connections, transaction

from tenants.citus.nodes import tenant_shards, workers
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from tests.tenants.cli_support import tenants
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner"])

WRITERS_PER_TENANT = 2
# Writes each tenant has acknowledged before the move starts, so the load runs through it.
WARM_UP_WRITES = 5
# Not a pass/fail timing: how long to wait for the warm-up before giving up (a hung cluster).
WARM_UP_LIMIT_SECONDS = 120


class Load:
    """Writer and reader threads on some tenants, each on its own database connection."""

    def __init__(self, tenants_: list[Tenant]) -> None:
        self.tenants = tenants_
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: dict[int, list[tuple[str, float]]] = collections.defaultdict(list)
        self.errors: list[tuple[float, str]] = []  # (when, what)
        self.foreign_rows: list[tuple] = []  # rows a reader saw that are not its tenant's
        self.reads = 0
        self.threads = [
            threading.Thread(target=self._write, args=(t, n), daemon=True)
            for t in tenants_
            for n in range(WRITERS_PER_TENANT)
        ] + [threading.Thread(target=self._read, args=(t,), daemon=True) for t in tenants_]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _write(self, tenant: Tenant, n: int) -> None:
        i = 0
        try:
            while not self.stop.is_set():
                name = f"{tenant.slug}-w{n}-{i}"
                i += 1
                try:
                    # A workflow and its run in one transaction: both colocated tables move.
                    with tenant_context(tenant), transaction.atomic():
                        workflow = Workflow.objects.create(name=name)
                        WorkflowRun.objects.create(workflow=workflow, input={"name": name})
                except Exception as exc:  # noqa: BLE001 - an unacknowledged write, counted
                    with self.lock:
                        self.errors.append((time.monotonic(), f"write {name}: {exc}"))
                    continue
                with self.lock:
                    self.acked[tenant.pk].append((name, time.monotonic()))
        finally:
            connections.close_all()

    def _read(self, tenant: Tenant) -> None:
        try:
            while not self.stop.is_set():
                try:
                    with tenant_context(tenant), transaction.atomic():
                        rows = list(
                            Workflow.objects.order_by("-id").values_list("tenant_id", "name")[:50]
                        ) + list(
                            WorkflowRun.objects.order_by("-id").values_list("tenant_id", "input")[
                                :50
                            ]
                        )
                except Exception as exc:  # noqa: BLE001 - a failed read, counted
                    with self.lock:
                        self.errors.append((time.monotonic(), f"read {tenant.slug}: {exc}"))
                    continue
                foreign = [
                    r for r in rows if r[0] != tenant.pk or f"{tenant.slug}-w" not in str(r[1])
                ]
                with self.lock:
                    self.reads += 1
                    self.foreign_rows.extend(foreign)
        finally:
            connections.close_all()

    def wait_for(self, writes: int) -> None:
        deadline = time.monotonic() + WARM_UP_LIMIT_SECONDS
        while min(len(self.acked[t.pk]) for t in self.tenants) < writes:
            assert time.monotonic() < deadline, (
                f"no load after {WARM_UP_LIMIT_SECONDS}s: {self.errors[:3]}"
            )
            time.sleep(0.05)


def _stored(tenant: Tenant) -> tuple[collections.Counter, collections.Counter]:
    """Names of the tenant's workflows and of its runs' inputs, with how often each occurs."""
    with tenant_context(tenant):
        workflows = collections.Counter(Workflow.objects.values_list("name", flat=True))
        runs = collections.Counter(
            r["name"] for r in WorkflowRun.objects.values_list("input", flat=True)
        )
    return workflows, runs


def _rows_by_owner() -> list[tuple[int, str]]:
    """Every workflow row with its tenant, read as the owner (no policy in between)."""
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT tenant_id, name FROM workflows_workflow")
        return cursor.fetchall()


def test_a_tenant_moved_to_its_own_worker_under_load_keeps_every_acknowledged_write():
    moving = Tenant.objects.create(slug="moving", external_id="moving", name="Moving")
    staying = Tenant.objects.create(slug="staying", external_id="staying", name="Staying")
    before = tenant_shards(tenant_ids=[moving.pk, staying.pk])
    with connections["default"].cursor() as cursor:
        target = next(w.name for w in workers(cursor) if w.name != before[moving.pk].node)
    assert not before[moving.pk].isolated

    with Load([moving, staying]) as load:
        load.wait_for(WARM_UP_WRITES)
        started = time.monotonic()
        out, _ = tenants("move", "moving", "--to", "node", target, "--json")
        ended = time.monotonic()
        load.wait_for(max(len(v) for v in load.acked.values()) + WARM_UP_WRITES)

    summary = json.loads(out)
    assert summary["steps"] == ["isolate", "move", "verify"]
    assert summary["source"] == before[moving.pk].node and summary["target"] == target
    # Writes wait only while a shard is copied: the moving tenant's were acknowledged while
    # the command ran.
    assert any(started < at < ended for _, at in load.acked[moving.pk])
    # No write refused; a read may fail while a shard is replaced (Citus: "could not find valid
    # entry for shard", seen now and then), never after the move.
    assert [e for _, e in load.errors if not e.startswith("read ")] == []
    assert [e for at, e in load.errors if at > ended] == []
    assert load.foreign_rows == [] and load.reads > 0
    # Rows are only ever added, so no table of the tenant has fewer rows after the move.
    assert all(summary["rows_after"][k] >= n for k, n in summary["rows_before"].items())

    for tenant in (moving, staying):
        workflows, runs = _stored(tenant)
        acked = [name for name, _ in load.acked[tenant.pk]]
        # Every acknowledged write exactly once, in both tables; nothing that was not written.
        wrong = {n: (workflows[n], runs[n]) for n in acked if (workflows[n], runs[n]) != (1, 1)}
        assert wrong == {}, (
            f"{tenant.slug}: {len(wrong)} of {len(acked)} acknowledged writes: {wrong}"
        )
        assert set(workflows) == set(runs) and set(acked) <= set(workflows)
        assert all(name.startswith(f"{tenant.slug}-w") for name in workflows)
    # No row under the wrong tenant, seen without any policy.
    slug_of = {moving.pk: "moving", staying.pk: "staying"}
    assert all(name.startswith(f"{slug_of[tid]}-w") for tid, name in _rows_by_owner())

    after = tenant_shards(tenant_ids=[moving.pk, staying.pk])
    assert after[moving.pk].isolated and after[moving.pk].node == target
    assert not after[staying.pk].isolated  # the other tenant keeps sharing its shard
    with tenant_context(moving):
        steps = list(
            AuditEvent.objects.filter(tenant_slug="moving", action__startswith="tenant.node.")
            .order_by("id")
            .values_list("action", flat=True)
        )
    assert steps == ["tenant.node.isolate", "tenant.node.move", "tenant.node.verify"]

    # Idempotent: a second run finds nothing to do and writes no audit event.
    again = json.loads(tenants("move", "moving", "--to", "node", target, "--json")[0])
    assert again["nothing_to_do"] and again["audit_event_ids"] == []


def test_the_runtime_role_cannot_split_or_move_shards():
    tenant = Tenant.objects.create(slug="moving", external_id="moving", name="Moving")
    shard = tenant_shards(tenant_ids=[tenant.pk])[tenant.pk]
    host, port = shard.node.rsplit(":", 1)
    with connections["default"].cursor() as cursor:
        other = next(w for w in workers(cursor) if w.name != shard.node)
    for sql, params in (
        ("SELECT isolate_tenant_to_new_shard('workflows_workflow', %s, 'CASCADE')", [tenant.pk]),
        (
            "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s)",
            [shard.shard_id, host, int(port), other.host, other.port],
        ),
    ):
        with (
            pytest.raises(DatabaseError, match="must be owner"),
            transaction.atomic(),
            connections["default"].cursor() as cursor,
        ):
            cursor.execute(sql, params)
