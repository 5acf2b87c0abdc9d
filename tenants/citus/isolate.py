"""`tenants move SLUG --to node NAME`: give a tenant its own shard group on a chosen Citus worker.

The steps, each skipped when already done (a second run finds nothing to do; a run cut off
half-way is finished by the next), each recorded as one audit event:

1. isolate: `isolate_tenant_to_new_shard(anchor, tenant_id, 'CASCADE')` splits the shard that
   holds the tenant into up to three, the middle one holding the tenant's hash value only;
   CASCADE splits the colocated tables' shards alike, so the tenant's rows stay together.
2. move: `citus_move_shard_placement` moves that shard group to the worker.
3. verify: the shard group holds only the tenant's hash value and is on the worker; the
   tenant's rows per table, counted before and after through the tenant's own scope (the
   app's view), are reported, equal unless the tenant wrote meanwhile (the move is online).

Transfer mode `block_writes`: Citus copies with COPY while writes to the shards being copied
wait (reads go on; other shards are untouched). Citus's online mode, `force_logical` (logical
replication, writes blocked only for the final catch-up), lost acknowledged writes under load
on this project's cluster (Citus 14.0.1, PostgreSQL 18): tests/citus/test_move_under_load.py
found 3 to 37 missing in 14 of 51 runs, and all 16 runs with block_writes kept every one
(docs/citus.md). So it is not offered until that is understood.
Runs as the owner: Citus lets only a table's owner split or move its shards.

The copies left behind (the split shards, the source's placement) are not dropped here: Citus
drops them after `citus.defer_shard_delete_interval` (15 s by default), long after any writer
could still be routed to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import DatabaseError, connections

from tenants.audit import record_event
from tenants.citus.distribute import require_coordinator
from tenants.citus.nodes import TenantShard, Worker, distributed_tables, tenant_shards, workers
from tenants.context import tenant_context
from tenants.exceptions import LifecycleError, NodeMoveFailed
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import tenant_tables
from tenants.models import Tenant

BLOCK_WRITES = "block_writes"
# Not `force_logical`, nor `auto` (which is logical replication where every table has a
# replica identity, as ours all do): see the module's docstring.
TRANSFER_MODES = (BLOCK_WRITES,)

ISOLATE, MOVE, VERIFY = "isolate", "move", "verify"


@dataclass
class NodeMoveSummary:
    tenant: str
    tenant_id: int
    target: str  # host:port
    source: str  # the node before this run
    transfer_mode: str
    dry_run: bool
    steps: list[str] = field(default_factory=list)  # done by this run (dry run: to do)
    shard_id: int = 0  # the tenant's shard of the anchor table, after the run
    rows_before: dict[str, int] = field(default_factory=dict)  # label -> rows
    rows_after: dict[str, int] = field(default_factory=dict)
    rows_changed: list[str] = field(default_factory=list)  # labels whose count differs
    seconds: dict[str, float] = field(default_factory=dict)  # step -> duration
    audit_event_ids: list[int] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps

    def as_dict(self) -> dict:
        return {**asdict(self), "nothing_to_do": self.nothing_to_do}


def tenant_move_to_node(
    *,
    tenant: Tenant,
    node: str,
    using: str,
    transfer_mode: str = BLOCK_WRITES,
    dry_run: bool = False,
    progress: Progress = no_progress,
    clock: Callable[[], float] = time.monotonic,
) -> NodeMoveSummary:
    """Isolate `tenant` and move its shard group to the worker `node` (host:port), on the
    owner's connection `using`; see the module's docstring."""
    if transfer_mode not in TRANSFER_MODES:
        raise LifecycleError(
            f"Unknown transfer mode {transfer_mode!r}: {', '.join(TRANSFER_MODES)}."
        )
    connection = connections[using]
    with connection.cursor() as cursor:
        try:
            require_coordinator(cursor)
        except LifecycleError as exc:
            raise LifecycleError(
                f"`tenants move --to node` needs a Citus coordinator: {exc}"
            ) from None
        tables = distributed_tables(cursor)
        if not tables:
            raise LifecycleError(
                "No tenant table is distributed yet: run `tenants distribute` first."
            )
        target = _worker(cursor, node)
    if not settings.TENANCY_CITUS:
        # Without it the tenant's scope stays on the coordinator, the workers show no row, and
        # the counts below would be zero before and after: a check that cannot fail.
        raise LifecycleError(
            "AMEIDE_CITUS is not set: the tenant's scope would not reach the workers and its rows "
            "could not be counted. Set AMEIDE_CITUS=true, as for the app on this cluster."
        )
    before = _shard(tenant=tenant, using=using)
    summary = NodeMoveSummary(
        tenant=tenant.slug,
        tenant_id=tenant.pk,
        target=target.name,
        source=before.node,
        transfer_mode=transfer_mode,
        dry_run=dry_run,
        shard_id=before.shard_id,
    )
    # Isolation leaves the tenant's new shard where the old one was; a move follows if that is
    # not the target.
    todo = [] if before.isolated else [ISOLATE]
    if before.node != target.name:
        todo.append(MOVE)
    if todo:
        todo.append(VERIFY)
    summary.steps = list(todo)
    if dry_run or not todo:
        return summary
    summary.steps = []
    summary.rows_before = _count_rows(tenant=tenant, tables=tables)
    for step in progress(todo, total=len(todo), desc=f"move {tenant.slug} to {target.name}"):
        started = clock()
        try:
            details = _run(
                step, tenant=tenant, tables=tables, target=target, summary=summary, using=using
            )
        except DatabaseError as exc:
            raise NodeMoveFailed(
                f"{step} failed for tenant {tenant.slug!r}: {exc}".strip()
                + f" (done before it: {', '.join(summary.steps) or 'nothing'}; run the command "
                "again to finish)"
            ) from None
        summary.seconds[step] = round(clock() - started, 3)
        summary.steps.append(step)
        event = record_event(
            action=f"tenant.node.{step.replace(' ', '_')}",
            tenant=tenant,
            details={**details, "node": target.name, "seconds": summary.seconds[step]},
        )
        summary.audit_event_ids.append(event.pk)
    return summary


def _worker(cursor, node: str) -> Worker:
    known = workers(cursor)
    for worker in known:
        if node == worker.name:
            return worker
    names = ", ".join(w.name for w in known) or "none"
    raise LifecycleError(
        f"No active worker {node!r} (host:port as Citus knows it): workers are {names}."
    )


def _shard(*, tenant: Tenant, using: str) -> TenantShard:
    return tenant_shards(tenant_ids=[tenant.pk], using=using)[tenant.pk]


def _count_rows(*, tenant: Tenant, tables: list[str]) -> dict[str, int]:
    """The tenant's rows in each distributed table, through its own scope (runtime role)."""
    counted = {}
    with tenant_context(tenant):
        for table in tenant_tables():
            if table.db_table in tables:
                counted[table.label] = table.model._base_manager.count()
    return counted


def _run(
    step: str, *, tenant, tables, target: Worker, summary: NodeMoveSummary, using: str
) -> dict:
    """One step on the owner's connection; returns what its audit event records."""
    with connections[using].cursor() as cursor:
        if step == ISOLATE:
            cursor.execute(
                "SELECT isolate_tenant_to_new_shard(%s, %s, 'CASCADE', shard_transfer_mode => %s)",
                [tables[0], tenant.pk, summary.transfer_mode],
            )
            summary.shard_id = cursor.fetchone()[0]
            return {"shard_id": summary.shard_id, "tables": tables, "mode": summary.transfer_mode}
        if step == MOVE:
            current = _shard(tenant=tenant, using=using)
            if current.node != target.name:
                host, port = current.node.rsplit(":", 1)
                cursor.execute(
                    "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, %s)",
                    [
                        current.shard_id,
                        host,
                        int(port),
                        target.host,
                        target.port,
                        summary.transfer_mode,
                    ],
                )
            return {
                "shard_id": current.shard_id,
                "from": current.node,
                "mode": summary.transfer_mode,
            }
    after = _shard(tenant=tenant, using=using)
    summary.shard_id = after.shard_id
    if not after.isolated or after.node != target.name:
        raise NodeMoveFailed(
            f"verify failed for tenant {tenant.slug!r}: its shard {after.shard_id} is on "
            f"{after.node} ({'its own' if after.isolated else 'shared'}), not its own on {target.name}"
        )
    summary.rows_after = _count_rows(tenant=tenant, tables=tables)
    summary.rows_changed = [
        label
        for label in summary.rows_before.keys() | summary.rows_after.keys()
        if summary.rows_before.get(label) != summary.rows_after.get(label)
    ]
    return {
        "shard_id": after.shard_id,
        "rows_before": summary.rows_before,
        "rows_after": summary.rows_after,
        "rows_changed": sorted(summary.rows_changed),
    }
