"""The `move` subcommand of `manage.py tenants` (shared, schema, database); the work is in
tenants.placement.moving."""

from __future__ import annotations

import json as json_module
import os
import signal

from tenants import selectors
from tenants.citus.isolate import BLOCK_WRITES, TRANSFER_MODES
from tenants.db.owner import owner_alias
from tenants.exceptions import LifecycleError
from tenants.management.citus_cli import NODE_MOVE_HELP
from tenants.placement.move_records import move_status
from tenants.placement.moving import STEPS, move_rollback, tenant_move

MOVE_HELP = """\
Move a tenant's rows to another placement while it keeps working (docs/placement.md, "Moving
a tenant"): `--to shared`, `--to schema NAME` or `--to database NAME` (a name of
AMEIDE_DATABASES, on this server or another), from any of them. Steps, each recorded and
audited: plan, prepare (the target provisioned or migrated), capture (triggers log the
tenant's changed rows), copy, catchup, freeze (the tenant's writes answer 503 with
Retry-After; its reads and every other tenant go on), final, verify (row counts and checksums
per table, on each side), switch, cleanup (the source rows deleted; to or from a dedicated
database after TENANCY_MOVE_STALE_SECONDS), done. Ids keep their values. Killed at any point,
run it again: it continues where it stopped. `--rollback` abandons an unfinished move before
its switch. Runs with the owners' connections (AMEIDE_DATABASES_OWNER for dedicated ones).
"""

# Tests only: the process kills itself (SIGKILL) right after recording this step, as `kill -9`.
KILL_AFTER_ENV = "AMEIDE_MOVE_KILL_AFTER"


def _kill_hook():
    wanted = os.environ.get(KILL_AFTER_ENV, "")
    if wanted and wanted not in STEPS:
        raise LifecycleError(f"{KILL_AFTER_ENV}={wanted!r} names no step of a move.")

    def after(step: str) -> None:
        if step == wanted:
            os.kill(os.getpid(), signal.SIGKILL)

    return after


class PlacementSubcommands:
    """Mixed into the `tenants` Command: move."""

    def add_placement_parsers(self, sub, *, formatter_class) -> None:
        move = sub.add_parser(
            "move",
            help="Move a tenant online: --to shared | schema NAME | database NAME "
            "(also --status, --rollback).",
            description=f"{MOVE_HELP}\n{NODE_MOVE_HELP}",
            formatter_class=formatter_class,
        )
        move.add_argument("slug", nargs="?", help="The tenant (optional with --status).")
        move.add_argument(
            "--to",
            nargs="+",
            metavar="DEST",
            help="shared | schema NAME | database NAME | node HOST:PORT (Citus)",
        )
        move.add_argument(
            "--transfer-mode",
            choices=TRANSFER_MODES,
            default=BLOCK_WRITES,
            help="--to node only: how Citus copies the shards (default: %(default)s).",
        )
        move.add_argument("--dry-run", action="store_true", help="Print the steps, change nothing.")
        move.add_argument(
            "--status", action="store_true", help="Unfinished and recent moves (of SLUG)."
        )
        move.add_argument(
            "--rollback",
            action="store_true",
            help="Abandon SLUG's unfinished move (before switch).",
        )
        move.add_argument("--json", action="store_true", help="Print JSON.")

    def do_move(
        self,
        *,
        slug=None,
        to=None,
        transfer_mode=BLOCK_WRITES,
        dry_run=False,
        status=False,
        rollback=False,
        json=False,
        **_,
    ):
        if status:
            tenant = selectors.tenant_get(slug=slug) if slug else None
            moves = move_status(tenant=tenant)
            lines = [
                f"{m['id']:>5} {m['tenant']:<20} {m['source']:>20} -> {m['target']:<20} "
                f"{m['step'] or '-':<8} {m['outcome']}"
                + (f"  error: {m['error']}" if m["error"] else "")
                for m in moves
            ]
            self._emit(moves, as_json=json, text="\n".join(lines) or "(no moves)")
            return
        if not slug:
            raise LifecycleError("Name the tenant: tenants move SLUG --to ...")
        tenant = selectors.tenant_get(slug=slug)
        if rollback:
            with owner_alias() as owner:
                summary = move_rollback(tenant=tenant, owner=owner)
            text = f"move {summary.move_id} of {slug} rolled back at step {summary.step}"
            self._emit(summary.as_dict(), as_json=json, text=text)
            return
        if not to or len(to) > 2:
            raise LifecycleError("--to shared | --to schema NAME | --to database NAME")
        kind, name = to[0], (to[1] if len(to) == 2 else "")
        if kind == "node":
            # Citus's own move (tenants.citus.isolate): the same command, another kind.
            return self.do_move_to_node(
                slug=slug, to=[kind, name], transfer_mode=transfer_mode, dry_run=dry_run, json=json
            )
        with owner_alias() as owner:
            summary = tenant_move(
                tenant=tenant,
                kind=kind,
                name=name,
                owner=owner,
                dry_run=dry_run,
                progress=self._progress(),
                after_step=_kill_hook(),
            )
        if json:
            self.stdout.write(json_module.dumps(summary.as_dict(), indent=2))
            return
        if summary.outcome == "already there":
            self.stdout.write(f"tenants move: nothing to do ({slug} is in {summary.target})")
            return
        if dry_run:
            rows = ", ".join(f"{k} {v}" for k, v in sorted(summary.stats["rows"].items()))
            self.stdout.write(
                f"would move {slug} from {summary.source} to {summary.target}: "
                f"{', '.join(summary.steps)}\nrows: {rows}"
            )
            return
        stats = summary.stats
        seconds = stats.get("seconds", {})
        for step in summary.steps:
            took = f" in {seconds[step]:.2f} s" if step in seconds else ""
            self.stdout.write(f"{step:<8} done{took}")
        copied = sum(stats.get("copied", {}).values())
        self.stdout.write(
            f"tenant {slug} moved from {summary.source} to {summary.target} (move "
            f"{summary.move_id}): {copied} rows copied ({stats.get('copy_rows_per_second')} "
            f"rows/s), catch-up rounds {stats.get('rounds', {})}, writes paused "
            f"{stats.get('freeze_ms')} ms"
        )
