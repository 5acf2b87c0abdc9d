"""The Citus subcommand of `manage.py tenants` (distribute); the work is in tenants.citus."""

from __future__ import annotations

import json as json_module

from tenants.citus.distribute import tenants_distribute
from tenants.db.owner import owner_alias

DISTRIBUTE_HELP = """\
On a Citus coordinator, place every table (docs/citus.md): tenant tables distributed by
tenant_id and colocated, the tables the wall reads on every node and the global tables tenant
tables point at as reference tables, the rest on the coordinator. Prints each table's place
and why. Idempotent; `migrate` runs it after the migrations on a Citus database, so a new
model is placed without it. Runs as the owner.
"""


class CitusSubcommands:
    """Mixed into the `tenants` Command: distribute."""

    def add_citus_parsers(self, sub, *, formatter_class) -> None:
        distribute = sub.add_parser(
            "distribute",
            help="On a Citus coordinator: distribute tenant tables, replicate the shared ones.",
            description=DISTRIBUTE_HELP,
            formatter_class=formatter_class,
        )
        distribute.add_argument("--json", action="store_true", help="Print the summary as JSON.")

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
