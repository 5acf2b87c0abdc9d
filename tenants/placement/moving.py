"""`tenants move SLUG --to shared | schema NAME | database NAME`: move one tenant's rows online,
resumably, verified.

The steps (STEPS), each recorded in the tenant's PlacementMove and audited when done; a run
resumes after the last one recorded, and every step is safe to run again:

plan      the move record (at most one unfinished per tenant)
prepare   the capture objects in each source database; the target provisioned (a schema:
          migrated as `migrate` does; a dedicated database: migrated when it lags); the target
          must hold no row of the tenant when the move begins
capture   triggers on the source tables log the tenant's changed rows (tenants.placement.capture)
copy      every table read in one REPEATABLE READ snapshot of each source database: keys
          between tables hold
catchup   replay the logged rows (delete them on the target, insert the source's), in rounds
          while the log shrinks
freeze    the tenant's writes to the source are refused (503); reads and other tenants go on
final     replay what is left: under the freeze nothing new arrives
verify    per table: row count and md5 of the rows in key order, computed on each side, equal;
          then the target's id sequences are moved past the ids copied
switch    the tenant's placement, the move's step and an audit row in one transaction
cleanup   wait for transactions that may still route to the source, drop the triggers, lift
          the freeze, delete the source rows and the change log
done

Rows move along legs (tenants.placement.rows): one per table whose place differs between the
two placements. A dedicated database holds the placed tables only (tenants.placement.router),
so memberships stay in `default` (a schema's memberships move to or from the shared tables).

Never two copies taking writes: the application writes only where Tenant.placement says, the
target is never written by it before the switch (and a dedicated schema's restrictive policy
refuses it), and after the switch the source stays frozen until no transaction that could have
routed there is left. Within one database a schema tenant's search path is read from the
tenant row per transaction, so that is the transactions open at the switch; a dedicated
database, and a shared tenant's search path, are chosen from the Tenant row a process loaded
(per request, per run), so a move to or from a database, or out of the shared tables, also
keeps the source frozen for TENANCY_MOVE_STALE_SECONDS after the switch.

Rows of `default` are read and written through the application's connection under break-glass
(`unscoped()`: audited, and the only scope PostgreSQL lets see two placements), rows of a
dedicated database in the tenant's own scope there; the owners' connections do DDL, the change
log, the freeze and the sequences, which the runtime role cannot touch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from io import StringIO

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone

from ameide.database import dedicated_alias
from tenants.audit import record_event
from tenants.context import no_tenant, unscoped
from tenants.exceptions import LifecycleError, MoveFailed
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import TenantTable, tenant_tables
from tenants.models import Placement, PlacementMove, Tenant
from tenants.placement import capture, databases
from tenants.placement.paths import HOME_SCHEMA
from tenants.placement.router import is_placed, placement_of_alias
from tenants.placement.rows import Leg, Rows, Side, advance_sequence, one_snapshot
from tenants.placement.schemas import checked_name, migrate_schema

PLAN, PREPARE, CAPTURE, COPY, CATCHUP = "plan", "prepare", "capture", "copy", "catchup"
FREEZE, FINAL, VERIFY, SWITCH, CLEANUP, DONE = (
    "freeze",
    "final",
    "verify",
    "switch",
    "cleanup",
    "done",
)
STEPS = (PLAN, PREPARE, CAPTURE, COPY, CATCHUP, FREEZE, FINAL, VERIFY, SWITCH, CLEANUP, DONE)
# Catch-up stops when a round replays at most this many rows (the freeze replays the rest), or
# when a round did not shrink the log, or after MAX_ROUNDS.
CATCHUP_ENOUGH = 500
MAX_ROUNDS = 10
# Rounds refused by a unique constraint that are read again before the move stops.
MAX_CONFLICTS = 3
# How long cleanup waits for transactions older than the switch before giving up (the move
# stays at `switch`; running it again continues).
DRAIN_TIMEOUT_SECONDS = 60.0
KINDS = (Placement.SHARED, Placement.SCHEMA, Placement.DATABASE)

StepHook = Callable[[str], None]


@dataclass
class MoveSummary:
    tenant: str
    tenant_id: int
    move_id: int
    source: str  # "shared", "schema:NAME" or "database:NAME"
    target: str
    dry_run: bool = False
    steps: list[str] = field(default_factory=list)  # done by this run (dry run: to do)
    step: str = ""  # the last step recorded
    outcome: str = ""
    stats: dict = field(default_factory=dict)

    @property
    def nothing_to_do(self) -> bool:
        return not self.steps

    def as_dict(self) -> dict:
        return {**asdict(self), "nothing_to_do": self.nothing_to_do}


def label(kind: str, name: str) -> str:
    return kind if kind == Placement.SHARED else f"{kind}:{name}"


def side_of(kind: str, name: str, table: TenantTable) -> Side:
    """Where a placement keeps one table's rows of its tenant."""
    if kind == Placement.DATABASE and is_placed(table.model):
        return Side(alias=_known_database(name), schema=HOME_SCHEMA)
    if kind == Placement.SCHEMA:
        return Side(alias=DEFAULT_DB_ALIAS, schema=checked_name(name))
    # Shared, and a dedicated database's tables that stay in `default` (memberships).
    return Side(alias=DEFAULT_DB_ALIAS, schema=HOME_SCHEMA)


def _known_database(name: str) -> str:
    if name not in databases.names():
        raise LifecycleError(
            f"No dedicated database {name!r} in this process (AMEIDE_DATABASES names "
            f"{', '.join(databases.names()) or 'none'})."
        )
    return dedicated_alias(name)


def checked_target(*, kind: str, name: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise LifecycleError(
            f"Unknown destination {kind!r}: `--to shared`, `--to schema NAME` or "
            "`--to database NAME`"
        )
    if kind == Placement.SHARED:
        if name:
            raise LifecycleError("`--to shared` takes no name.")
        return kind, ""
    if not name:
        raise LifecycleError(f"`--to {kind}` needs a name.")
    if kind == Placement.DATABASE:
        _known_database(name)
        return kind, name
    return kind, checked_name(name)


def unfinished(tenant: Tenant) -> PlacementMove | None:
    with no_tenant():
        return PlacementMove.objects.filter(tenant=tenant, finished_at__isnull=True).first()


def _tables() -> list[TenantTable]:
    tables = tenant_tables()
    for table in tables:
        if table.pk.get_internal_type() not in ("AutoField", "BigAutoField", "BigIntegerField"):
            raise LifecycleError(
                f"{table.label}: only integer ids can be moved (its key is {table.pk.name})."
            )
    return tables


def legs_of(move: PlacementMove) -> list[Leg]:
    """The tables whose place differs between the move's source and target, in key order."""
    legs = []
    for table in _tables():
        source = side_of(move.source_kind, move.source_name, table)
        target = side_of(move.target_kind, move.target_name, table)
        if source != target:
            legs.append(Leg(table=table, source=source, target=target))
    return legs


def routed_by_process(move: PlacementMove) -> bool:
    """Whether a process's Tenant row, not the database, decides where the tenant's rows go
    during this move: the router picks a dedicated database's alias from it, and the backend
    routes a tenant whose row says the shared tables there without asking the database
    (tenants.db.backend), so a row loaded before a move out of them still routes there."""
    return Placement.DATABASE in (move.source_kind, move.target_kind) or (
        move.source_kind == Placement.SHARED
    )


class _Mover:
    """One run of a move: the record, the connections, the clock and the hooks."""

    def __init__(self, *, move, tenant, owner, progress, clock, sleep, after_step):
        self.move = move
        self.tenant = tenant
        self.owner = owner
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.after_step = after_step
        self.legs = legs_of(move)
        self.rows = Rows(tenant=tenant, legs=self.legs, clock=clock, sleep=sleep)
        # Each source (database, schema) once: its triggers, change log and freeze.
        self.sources = list(dict.fromkeys(leg.source for leg in self.legs))
        self.guards = self._guards()
        self.done: list[str] = []

    def _guards(self) -> list[tuple[Side, TenantTable]]:
        """Where a process that loaded the Tenant row before the switch may still write
        besides the source: from a schema to a database, its placed models go to `default`,
        whose search path (read in the database) is the shared tables' from the switch on.
        Frozen like the source from the switch to the clean-up."""
        if (self.move.source_kind, self.move.target_kind) != (
            Placement.SCHEMA,
            Placement.DATABASE,
        ):
            return []
        home = Side(alias=DEFAULT_DB_ALIAS, schema=HOME_SCHEMA)
        return [(home, leg.table) for leg in self.legs if is_placed(leg.table.model)]

    def owner_of(self, alias: str) -> str:
        """The owner's alias of the database `alias` is (the caller's for `default`)."""
        name = placement_of_alias(alias)
        return databases.register_owner_alias(name) if name else self.owner

    def source_aliases(self) -> list[str]:
        return list(dict.fromkeys(side.alias for side in self.sources))

    # --- bookkeeping ---------------------------------------------------------------------
    def record(self, step: str, *, with_it: Callable[[], None] | None = None, **details) -> None:
        """The step is done: the record, its audit row (and `with_it`'s writes) commit
        together; then the hook runs."""
        self.move.step = step
        if step == DONE:
            self.move.finished_at = timezone.now()
            self.move.outcome = PlacementMove.Outcome.DONE
        with no_tenant(), transaction.atomic():
            if with_it is not None:
                with_it()
            self.move.save()
            record_event(
                action=f"tenant.move.{step}",
                tenant=self.tenant,
                details={
                    "move": self.move.pk,
                    "source": label(self.move.source_kind, self.move.source_name),
                    "target": label(self.move.target_kind, self.move.target_name),
                    **details,
                },
            )
        self.done.append(step)
        self.after_step(step)

    def timed(self, step: str, started: float) -> None:
        self.move.stats.setdefault("seconds", {})[step] = round(self.clock() - started, 4)

    def reason(self, what: str) -> str:
        return f"tenants move {self.tenant.slug} (move {self.move.pk}): {what}"

    @contextmanager
    def transactions(
        self, what: str, *, aliases: list[str], snapshot: bool = False
    ) -> Iterator[None]:
        """Break-glass on `default` (its transaction) and a transaction on each other alias
        of `aliases`, all committed at the end of the block; REPEATABLE READ with `snapshot`."""
        with ExitStack() as stack:
            for alias in aliases:
                if snapshot:
                    stack.enter_context(one_snapshot(alias))
                if alias != DEFAULT_DB_ALIAS:
                    stack.enter_context(transaction.atomic(using=alias))
            stack.enter_context(unscoped(reason=self.reason(what)))
            yield

    # --- the steps -----------------------------------------------------------------------
    def prepare(self) -> None:
        started = self.clock()
        for alias in self.source_aliases():
            capture.ensure_objects(using=self.owner_of(alias))
        if self.move.target_kind == Placement.SCHEMA:
            migrate_schema(checked_name(self.move.target_name), using=self.owner)
        if self.move.target_kind == Placement.DATABASE:
            owner = self.owner_of(dedicated_alias(self.move.target_name))
            if databases.lag_of(owner):
                databases.migrate_one(owner, stdout=StringIO(), verbosity=0)
        if self.move.step == PLAN:  # a move that copied nothing yet: the target must be empty
            counts = self.counts("target")
            if any(counts.values()):
                raise MoveFailed(
                    f"{label(self.move.target_kind, self.move.target_name)} already holds rows "
                    f"of {self.tenant.slug}: "
                    + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                )
        self.timed(PREPARE, started)
        self.record(PREPARE)

    def capture_on(self) -> None:
        started = self.clock()
        for leg in self.progress(self.legs, total=len(self.legs), desc="capture"):
            self._trigger(leg.source, leg.table)
        self.timed(CAPTURE, started)
        self.record(CAPTURE)

    def _trigger(self, side: Side, table: TenantTable) -> None:
        capture.create_triggers(
            schema=side.schema,
            table=table.db_table,
            pk=table.pk.column,
            tenant_id=self.tenant.pk,
            using=self.owner_of(side.alias),
        )

    def copy(self) -> None:
        started = self.clock()
        # One snapshot of each source database for all its tables: keys between them hold.
        with self.transactions("initial copy", aliases=self.source_aliases(), snapshot=True):
            counts = {leg.table.db_table: self.rows.copy_paced(leg) for leg in self.legs}
        seconds = self.clock() - started
        rows = sum(counts.values())
        self.move.stats["copied"] = counts
        self.move.stats["copy_rows_per_second"] = round(rows / seconds) if seconds else None
        self.timed(COPY, started)
        self.record(COPY, rows=rows)

    def catch_up(self, step: str) -> None:
        """Replay the change log; in `catchup` while it shrinks, in `final` until empty."""
        started = self.clock()
        rounds = self.move.stats.setdefault("rounds", {}).setdefault(step, [])
        targets = list(dict.fromkeys(leg.target.alias for leg in self.legs))
        previous, conflicts = None, 0
        while True:
            # Each source database logs its own tables' changes.
            pending = {
                alias: capture.pending_changes(tenant_id=self.tenant.pk, using=self.owner_of(alias))
                for alias in self.source_aliases()
            }
            ids = {t: i for changes in pending.values() for t, (_, i) in changes.items()}
            replayed = sum(len(i) for i in ids.values())
            if not ids:
                break
            try:
                with self.transactions(f"{step} round {len(rounds) + 1}", aliases=targets):
                    self.rows.replay(ids)
            except IntegrityError:
                # A unique value moved between two rows, one of whose changes committed after
                # the log was read: read the log again, which now holds it.
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    raise
                continue
            for alias, changes in pending.items():
                capture.forget_changes(
                    seqs=[s for seqs, _ in changes.values() for s in seqs],
                    using=self.owner_of(alias),
                )
            rounds.append(replayed)
            if step == CATCHUP and (
                replayed <= CATCHUP_ENOUGH
                or (previous is not None and replayed >= previous)
                or len(rounds) >= MAX_ROUNDS
            ):
                break
            previous = replayed
        self.timed(step, started)
        self.record(step, rows=sum(rounds))

    def freeze(self) -> None:
        self.move.stats["freeze_started"] = self.clock()
        for side in self.sources:
            capture.freeze(
                tenant_id=self.tenant.pk, schema=side.schema, using=self.owner_of(side.alias)
            )
        self.move.stats["freeze_locked_ms"] = round(
            (self.clock() - self.move.stats["freeze_started"]) * 1000, 2
        )
        self.record(FREEZE)

    def unfreeze(self) -> None:
        for alias in dict.fromkeys([*self.source_aliases(), *(s.alias for s, _ in self.guards)]):
            capture.unfreeze(tenant_id=self.tenant.pk, using=self.owner_of(alias))

    def verify(self) -> None:
        started = self.clock()
        with self.transactions("verify", aliases=[]):
            source, target = self.rows.digests("source"), self.rows.digests("target")
        differ = sorted(t for t in source if source[t][:2] != target.get(t, ())[:2])
        self.move.stats["verified"] = {
            t: {"rows": source[t][0], "md5": source[t][1]} for t in source
        }
        if differ:
            # Lift the freeze: the tenant must not stay unable to write because a check
            # failed. A rerun catches up, freezes and verifies again.
            self.unfreeze()
            self.move.step = CATCHUP
            self.move.error = "verify: differ in " + ", ".join(
                f"{t} (source {source[t][:2]}, target {target.get(t, ())[:2]})" for t in differ
            )
            with no_tenant():
                self.move.save()
            raise MoveFailed(f"move {self.move.pk}: {self.move.error}")
        # Ids kept their values: the target's sequences must not hand them out again.
        self.move.stats["sequences"] = {
            leg.table.db_table: advance_sequence(
                table=leg.table,
                owner=self.owner_of(leg.target.alias),
                past=target[leg.table.db_table][2],
            )
            for leg in self.legs
            if target[leg.table.db_table][2]
        }
        self.timed(VERIFY, started)
        self.record(VERIFY, tables=len(source))

    def switch(self) -> None:
        # Where a process holding the old Tenant row would now write, besides the source:
        # frozen before the placement changes (see _guards).
        for side, table in self.guards:
            self._trigger(side, table)
        for side in dict.fromkeys(side for side, _ in self.guards):
            capture.freeze(
                tenant_id=self.tenant.pk, schema=side.schema, using=self.owner_of(side.alias)
            )

        def placement() -> None:
            tenant = Tenant.objects.select_for_update().get(pk=self.tenant.pk)
            tenant.placement = self.move.target_kind
            tenant.placement_name = self.move.target_name
            tenant.save(update_fields=["placement", "placement_name", "updated_at"])
            self.tenant = tenant
            self.move.stats["switched_at"] = time.time()
            started = self.move.stats.get("freeze_started")
            if started is not None:
                # The tenant's writes are refused from the freeze to this commit: the window
                # a client sees (plus its retry).
                self.move.stats["freeze_ms"] = round((self.clock() - started) * 1000, 2)

        self.record(SWITCH, with_it=placement)

    def cleanup(self) -> None:
        started = self.clock()
        # The source stays frozen (and its triggers in place) until no transaction that began
        # before the switch, and so may still route there, is left.
        for alias in self.source_aliases():
            left = capture.wait_for_older_transactions(
                using=self.owner_of(alias),
                timeout_seconds=DRAIN_TIMEOUT_SECONDS,
                sleep=self.sleep,
            )
            if left:
                raise MoveFailed(
                    f"move {self.move.pk}: transactions older than the switch are still open "
                    f"in {alias} (pids {left}); the tenant already lives in "
                    f"{label(self.move.target_kind, self.move.target_name)}; run the move "
                    "again to finish the clean-up"
                )
        if routed_by_process(self.move):
            # A process routes a dedicated database's tenant by the Tenant row it loaded (per
            # request, per run): keep the source frozen as long as such a row may be in use.
            until = self.move.stats.get("switched_at", 0) + settings.TENANCY_MOVE_STALE_SECONDS
            while (left := until - time.time()) > 0:
                self.sleep(min(left, 1.0))
        for side, table in [*((leg.source, leg.table) for leg in self.legs), *self.guards]:
            capture.drop_triggers(
                schema=side.schema,
                table=table.db_table,
                tenant_id=self.tenant.pk,
                using=self.owner_of(side.alias),
            )
        self.unfreeze()
        with self.transactions("delete the source rows", aliases=self.source_aliases()):
            deleted = {
                leg.table.db_table: self.rows.delete_paced(leg) for leg in reversed(self.legs)
            }
        for alias in self.source_aliases():
            capture.forget_tenant(tenant_id=self.tenant.pk, using=self.owner_of(alias))
        self.move.stats["source_deleted"] = deleted
        self.timed(CLEANUP, started)
        self.record(CLEANUP, rows=sum(deleted.values()))

    def counts(self, which: str) -> dict[str, int]:
        with self.transactions(f"count rows on the {which}", aliases=[]):
            return {
                t: rows for t, (rows, _, _) in self.rows.digests(which, checksums=False).items()
            }


def _no_hook(step: str) -> None:
    return None


def tenant_move(
    *,
    tenant: Tenant,
    kind: str,
    name: str = "",
    owner: str,
    dry_run: bool = False,
    progress: Progress = no_progress,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    after_step: StepHook = _no_hook,
) -> MoveSummary:
    """Move `tenant` to (kind, name), or finish its unfinished move there. `owner` is the
    owner's alias (tenants.db.owner). `after_step` runs after each step is recorded (the
    tests' kill hook)."""
    kind, name = checked_target(kind=kind, name=name)
    if connections["default"].in_atomic_block:
        raise LifecycleError("A move runs outside any transaction (each step commits).")
    move = unfinished(tenant)
    if move is not None and (move.target_kind, move.target_name) != (kind, name):
        raise LifecycleError(
            f"Tenant {tenant.slug!r} has an unfinished move (id {move.pk}) to "
            f"{label(move.target_kind, move.target_name)}: run it again with that target, or "
            f"`tenants move {tenant.slug} --rollback`."
        )
    if move is None and (tenant.placement, tenant.placement_name) == (kind, name):
        return MoveSummary(
            tenant=tenant.slug,
            tenant_id=tenant.pk,
            move_id=0,
            source=label(kind, name),
            target=label(kind, name),
            dry_run=dry_run,
            outcome="already there",
        )
    if move is None:
        if tenant.placement == Placement.DATABASE:
            _known_database(tenant.placement_name)  # its rows must be reachable from here
        move = PlacementMove(
            tenant=tenant,
            source_kind=tenant.placement,
            source_name=tenant.placement_name,
            target_kind=kind,
            target_name=name,
        )
    summary = MoveSummary(
        tenant=tenant.slug,
        tenant_id=tenant.pk,
        move_id=move.pk or 0,
        source=label(move.source_kind, move.source_name),
        target=label(kind, name),
        dry_run=dry_run,
    )
    to_do = list(STEPS[STEPS.index(move.step) + 1 :] if move.step else STEPS)
    if dry_run:
        summary.steps = to_do
        summary.step = move.step
        summary.stats = {"rows": _source_rows(move, tenant)}
        return summary
    if move.pk is None:
        with no_tenant(), transaction.atomic():
            move.save()
    mover = _Mover(
        move=move,
        tenant=tenant,
        owner=owner,
        progress=progress,
        clock=clock,
        sleep=sleep,
        after_step=after_step,
    )
    actions = {
        PLAN: lambda: mover.record(PLAN),
        PREPARE: mover.prepare,
        CAPTURE: mover.capture_on,
        COPY: mover.copy,
        CATCHUP: lambda: mover.catch_up(CATCHUP),
        FREEZE: mover.freeze,
        FINAL: lambda: mover.catch_up(FINAL),
        VERIFY: mover.verify,
        SWITCH: mover.switch,
        CLEANUP: mover.cleanup,
        DONE: lambda: mover.record(DONE, stats=reported_stats(move.stats)),
    }
    capture.ensure_objects(using=owner)
    with capture.mover_lock(tenant_id=tenant.pk, using=owner):
        with no_tenant():
            move.refresh_from_db()  # what a process that held the lock before us left
        if move.finished_at is not None:
            raise LifecycleError(f"Move {move.pk} was finished by another process meanwhile.")
        for step in progress(to_do, total=len(to_do), desc=f"move {tenant.slug}"):
            if STEPS.index(step) <= STEPS.index(move.step or PLAN) and move.step:
                continue  # done by the process that held the lock before us
            try:
                actions[step]()
            except MoveFailed:
                raise
            except Exception as exc:
                _note_error(move, f"{step}: {exc}")
                raise
    summary.move_id = move.pk
    summary.steps = mover.done
    summary.step = move.step
    summary.outcome = move.outcome
    summary.stats = reported_stats(move.stats)
    return summary


def reported_stats(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k != "freeze_started"}


def _note_error(move: PlacementMove, error: str) -> None:
    move.error = error[:10_000]
    with no_tenant():
        PlacementMove.objects.filter(pk=move.pk).update(error=move.error)


def _source_rows(move: PlacementMove, tenant: Tenant) -> dict[str, int]:
    mover = _Mover(
        move=move,
        tenant=tenant,
        owner="default",
        progress=no_progress,
        clock=time.time,
        sleep=time.sleep,
        after_step=_no_hook,
    )
    return mover.counts("source")


def move_rollback(*, tenant: Tenant, owner: str) -> MoveSummary:
    """Abandon the tenant's unfinished move before its switch: the target's copies, the
    triggers, the freeze and the change log go; the tenant stays where it is."""
    move = unfinished(tenant)
    if move is None:
        raise LifecycleError(f"Tenant {tenant.slug!r} has no unfinished move.")
    if move.step in (SWITCH, CLEANUP):
        raise LifecycleError(
            f"Move {move.pk} has switched {tenant.slug!r} to "
            f"{label(move.target_kind, move.target_name)}: run it again to finish; to go back, "
            "move the tenant again afterwards."
        )
    mover = _Mover(
        move=move,
        tenant=tenant,
        owner=owner,
        progress=no_progress,
        clock=time.time,
        sleep=time.sleep,
        after_step=_no_hook,
    )
    capture.ensure_objects(using=owner)
    with capture.mover_lock(tenant_id=tenant.pk, using=owner):
        with no_tenant():
            move.refresh_from_db()
        if move.finished_at is not None or move.step in (SWITCH, CLEANUP):
            raise LifecycleError(f"Move {move.pk} went on meanwhile (step {move.step}).")
        for side, table in [*((leg.source, leg.table) for leg in mover.legs), *mover.guards]:
            capture.drop_triggers(
                schema=side.schema,
                table=table.db_table,
                tenant_id=tenant.pk,
                using=mover.owner_of(side.alias),
            )
        mover.unfreeze()
        deleted: dict[str, int] = {}
        if move.step not in ("", PLAN):  # before prepare the target may hold another's rows
            with mover.transactions("roll back: delete the target's copies", aliases=[]):
                deleted = mover.rows.delete_targets()
        for alias in mover.source_aliases():
            capture.forget_tenant(tenant_id=tenant.pk, using=mover.owner_of(alias))
        move.outcome = PlacementMove.Outcome.ROLLED_BACK
        move.finished_at = timezone.now()
        move.stats["target_deleted"] = deleted
        with no_tenant(), transaction.atomic():
            move.save()
            record_event(
                action="tenant.move.rollback",
                tenant=tenant,
                details={"move": move.pk, "at_step": move.step, "deleted": deleted},
            )
    return MoveSummary(
        tenant=tenant.slug,
        tenant_id=tenant.pk,
        move_id=move.pk,
        source=label(move.source_kind, move.source_name),
        target=label(move.target_kind, move.target_name),
        steps=["rollback"],
        step=move.step,
        outcome=move.outcome,
        stats=reported_stats(move.stats),
    )
