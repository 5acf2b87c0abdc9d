"""The Citus subcommands of `manage.py tenants` (distribute, move --to node); the work is in
tenants.citus."""

from __future__ import annotations

import json as json_module

from tenants import selectors
from tenants.citus.distribute import tenants_distribute
from tenants.citus.isolate import BLOCK_WRITES, tenant_move_to_node
from tenants.db.owner import owner_alias
from tenants.exceptions import LifecycleError

DISTRIBUTE_HELP = """\
On a Citus coordinator, place every table (docs/citus.md): tenant tables distributed by
tenant_id and colocated, the tables the wall reads on every node and the global tables tenant
tables point at as reference tables, the rest on the coordinator. Prints each table's place
and why. Idempotent; `migrate` runs it after the migrations on a Citus database, so a new
model is placed without it. Runs as the owner.
"""

NODE_MOVE_HELP = """\
On Citus, `--to node HOST:PORT` gives a tenant its own shards on a worker (docs/citus.md),
named as pg_dist_node lists it; a name Citus does not know is refused with the list.
Steps, each audited and skipped when already done: isolate the tenant to its own shards
(isolate_tenant_to_new_shard, CASCADE), move them to the worker (citus_move_shard_placement),
verify (its shard on the worker; its rows per table before and after). Writes to the shards
being copied wait during each copy (Citus's block_writes: its logical-replication mode lost
acknowledged writes in our tests); reads go on, other shards are untouched. Running it again
does nothing. Citus drops the copies left behind after citus.defer_shard_delete_interval.
Runs as the owner; needs AMEIDE_CITUS=true.
"""


class CitusSubcommands:
    """Mixed into the `tenants` Command: distribute, move --to node."""

    def add_citus_parsers(self, sub, *, formatter_class) -> None:
        distribute = sub.add_parser(
            "distribute",
            help="On a Citus coordinator: distribute tenant tables, replicate the shared ones.",
            description=DISTRIBUTE_HELP,
            formatter_class=formatter_class,
        )
        distribute.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        # `move --to node` is parsed with the other destinations of `tenants move`
        # (tenants.management.placement_cli), which hands it to do_move_to_node.

    def do_distribute(self, *, json=False, **_):
        with owner_alias() as using:
            summary = tenants_distribute(using=using, progress=self._progress())
        if json:
            self.stdout.write(json_module.dumps(summary.as_dict(), indent=2))
            return
        placed = set(summary.placed)
        for p in summary.placements:
            done = "placed now" if p.table in placed else "in place"
            self.stdout.write(f"{p.table:<40} {p.kind:<12} {done:<11} {p.reason}")
        for key in summary.dropped_keys:
            self.stdout.write(
                f"dropped foreign key {key.table}.{key.name} -> {key.target}: {key.reason}"
            )
        for function in summary.revoked:
            self.stdout.write(f"revoked EXECUTE on {function} from PUBLIC")
        if not (placed or summary.dropped_keys or summary.revoked):
            self.stdout.write("tenants distribute: nothing to do")

    def do_move_to_node(
        self, *, slug, to, transfer_mode=BLOCK_WRITES, dry_run=False, json=False, **_
    ):
        kind, name = to
        if kind != "node":
            raise LifecycleError(f"Unknown destination {kind!r}: `--to node HOST:PORT` (Citus).")
        tenant = selectors.tenant_get(slug=slug)
        with owner_alias() as using:
            summary = tenant_move_to_node(
                tenant=tenant,
                node=name,
                using=using,
                transfer_mode=transfer_mode,
                dry_run=dry_run,
                progress=self._progress(),
            )
        if json:
            self.stdout.write(json_module.dumps(summary.as_dict(), indent=2))
            return
        where = f"tenant {slug}: own shard {summary.shard_id} on {summary.target}"
        if summary.nothing_to_do:
            self.stdout.write(f"tenants move: nothing to do ({where})")
            return
        if dry_run:
            self.stdout.write(f"would run: {', '.join(summary.steps)} (from {summary.source})")
            return
        for step in summary.steps:
            self.stdout.write(f"{step:<10} done in {summary.seconds[step]:.2f} s")
        rows = ", ".join(f"{k} {v}" for k, v in sorted(summary.rows_after.items()))
        self.stdout.write(f"{where} (was on {summary.source}); rows: {rows}")
        for label in sorted(summary.rows_changed):
            self.stdout.write(
                f"note: {label} had {summary.rows_before.get(label)} rows before and "
                f"{summary.rows_after.get(label)} after: the tenant wrote during the move"
            )
