"""`tenants move SLUG --to shared | schema NAME`: move one tenant's rows online, resumably, verified.

The steps (STEPS), each recorded in the tenant's PlacementMove and audited when done; a run
resumes after the last one recorded, and every step is safe to run again:

plan      the move record (at most one unfinished per tenant)
prepare   the capture objects; the target provisioned (a schema: migrated as `migrate` does);
          the target must hold no row of the tenant when the move begins
capture   triggers on the source tables log the tenant's changed rows (tenants.placement.capture)
copy      every table in one statement: one snapshot, so keys between tables hold
catchup   replay the logged rows (upsert the source row, or delete it where it is gone), in
          rounds while the log shrinks
freeze    the tenant's writes to the source are refused (503); reads and other tenants go on
final     replay what is left: under the freeze nothing new arrives
verify    per table: row count and md5 of the rows in key order, equal on both sides
switch    the tenant's placement, the move's step and an audit row in one transaction: every
          process routes the tenant to the target from its next transaction (the search path
          is read from the tenant row in the database per transaction)
cleanup   wait for transactions older than the switch, drop the triggers, lift the freeze,
          delete the source rows and the change log
done

Never two copies taking writes: the application writes only where Tenant.placement says, the
target is never written by it before the switch (and a dedicated schema's restrictive policy
refuses it), and after the switch the source stays frozen until no transaction that could have
routed there is left. Ids are copied as they are: a dedicated schema draws ids from the shared
tables' sequences (tenants.placement.schemas), so there is one id space to keep.

Rows are read and written through the application's connection under break-glass
(`unscoped()`: audited, and the only scope PostgreSQL lets see two placements); the owner's
connection does DDL, the change log and the freeze, which the runtime role cannot touch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from tenants.audit import record_event
from tenants.context import no_tenant, unscoped
from tenants.exceptions import LifecycleError, MoveFailed
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import TenantTable, tenant_tables
from tenants.models import Placement, PlacementMove, Tenant
from tenants.placement import capture
from tenants.placement.paths import HOME_SCHEMA
from tenants.placement.rows import Rows, one_snapshot
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
KINDS = (Placement.SHARED, Placement.SCHEMA)

StepHook = Callable[[str], None]


@dataclass
class MoveSummary:
    tenant: str
    tenant_id: int
    move_id: int
    source: str  # "shared" or "schema:NAME"
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


def schema_of(kind: str, name: str) -> str:
    """The PostgreSQL schema of a placement in this database."""
    if kind == Placement.SHARED:
        return HOME_SCHEMA
    if kind == Placement.SCHEMA:
        return checked_name(name)
    raise LifecycleError(f"Moves to or from a {kind} placement are not built yet.")


def checked_target(*, kind: str, name: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise LifecycleError(
            f"Unknown destination {kind!r}: `--to shared` or `--to schema NAME`"
            + (
                " (dedicated databases: not built yet, docs/placement.md)"
                if kind == "database"
                else ""
            )
        )
    if kind == Placement.SHARED:
        if name:
            raise LifecycleError("`--to shared` takes no name.")
        return kind, ""
    if not name:
        raise LifecycleError(f"`--to {kind}` needs a name.")
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


class _Mover:
    """One run of a move: the record, the two connections, the clock and the hooks."""

    def __init__(self, *, move, tenant, owner, progress, clock, sleep, after_step):
        self.move = move
        self.tenant = tenant
        self.owner = owner
        self.progress = progress
        self.clock = clock
        self.sleep = sleep
        self.after_step = after_step
        self.tables = _tables()
        self.source = schema_of(move.source_kind, move.source_name)
        self.target = schema_of(move.target_kind, move.target_name)
        self.rows = Rows(
            tenant_id=tenant.pk,
            source=self.source,
            target=self.target,
            tables=self.tables,
            clock=clock,
            sleep=sleep,
        )
        self.done: list[str] = []

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

    # --- the steps -----------------------------------------------------------------------
    def prepare(self) -> None:
        started = self.clock()
        capture.ensure_objects(using=self.owner)
        if self.move.target_kind == Placement.SCHEMA:
            migrate_schema(self.target, using=self.owner)
        if self.move.step == PLAN:  # a move that copied nothing yet: the target must be empty
            counts = self.counts(self.target)
            if any(counts.values()):
                raise MoveFailed(
                    f"{self.target} already holds rows of {self.tenant.slug}: "
                    + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                )
        self.timed(PREPARE, started)
        self.record(PREPARE)

    def capture_on(self) -> None:
        started = self.clock()
        for table in self.progress(self.tables, total=len(self.tables), desc="capture"):
            capture.create_triggers(
                schema=self.source,
                table=table.db_table,
                pk=table.pk.column,
                tenant_id=self.tenant.pk,
                using=self.owner,
            )
        self.timed(CAPTURE, started)
        self.record(CAPTURE)

    def copy(self) -> None:
        started = self.clock()
        with one_snapshot(), unscoped(reason=self.reason("initial copy")):
            counts = {t.db_table: self.rows.copy_paced(t) for t in self.tables}
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
        previous, conflicts = None, 0
        while True:
            pending = capture.pending_changes(tenant_id=self.tenant.pk, using=self.owner)
            replayed = sum(len(ids) for _, ids in pending.values())
            if not pending:
                break
            try:
                with unscoped(reason=self.reason(f"{step} round {len(rounds) + 1}")):
                    self.rows.replay({table: ids for table, (_, ids) in pending.items()})
            except IntegrityError:
                # A unique value moved between two rows, one of whose changes committed after
                # the log was read: read the log again, which now holds it.
                conflicts += 1
                if conflicts > MAX_CONFLICTS:
                    raise
                continue
            capture.forget_changes(
                seqs=[s for seqs, _ in pending.values() for s in seqs], using=self.owner
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
        capture.freeze(tenant_id=self.tenant.pk, schema=self.source, using=self.owner)
        self.move.stats["freeze_locked_ms"] = round(
            (self.clock() - self.move.stats["freeze_started"]) * 1000, 2
        )
        self.record(FREEZE)

    def verify(self) -> None:
        started = self.clock()
        with unscoped(reason=self.reason("verify")):
            source, target = self.rows.digests(self.source), self.rows.digests(self.target)
        differ = sorted(t for t in source if source[t] != target.get(t))
        self.move.stats["verified"] = {
            t: {"rows": source[t][0], "md5": source[t][1]} for t in source
        }
        if differ:
            # Lift the freeze: the tenant must not stay unable to write because a check
            # failed. A rerun catches up, freezes and verifies again.
            capture.unfreeze(tenant_id=self.tenant.pk, using=self.owner)
            self.move.step = CATCHUP
            self.move.error = "verify: differ in " + ", ".join(
                f"{t} (source {source[t]}, target {target.get(t)})" for t in differ
            )
            with no_tenant():
                self.move.save()
            raise MoveFailed(f"move {self.move.pk}: {self.move.error}")
        self.timed(VERIFY, started)
        self.record(VERIFY, tables=len(source))

    def switch(self) -> None:
        def placement() -> None:
            tenant = Tenant.objects.select_for_update().get(pk=self.tenant.pk)
            tenant.placement = self.move.target_kind
            tenant.placement_name = self.move.target_name
            tenant.save(update_fields=["placement", "placement_name", "updated_at"])
            self.tenant = tenant
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
        left = capture.wait_for_older_transactions(
            using=self.owner, timeout_seconds=DRAIN_TIMEOUT_SECONDS, sleep=self.sleep
        )
        if left:
            raise MoveFailed(
                f"move {self.move.pk}: transactions older than the switch are still open "
                f"(pids {left}); the tenant already lives in {self.target}; run the move "
                "again to finish the clean-up"
            )
        for table in self.tables:
            capture.drop_triggers(
                schema=self.source, table=table.db_table, tenant_id=self.tenant.pk, using=self.owner
            )
        capture.unfreeze(tenant_id=self.tenant.pk, using=self.owner)
        with unscoped(reason=self.reason("delete the source rows")):
            deleted = {t.db_table: self.rows.delete_paced(t) for t in reversed(self.tables)}
        capture.forget_tenant(tenant_id=self.tenant.pk, using=self.owner)
        self.move.stats["source_deleted"] = deleted
        self.timed(CLEANUP, started)
        self.record(CLEANUP, rows=sum(deleted.values()))

    def counts(self, schema: str) -> dict[str, int]:
        with unscoped(reason=self.reason(f"count rows in {schema}")):
            return {t: rows for t, (rows, _) in self.rows.digests(schema, checksums=False).items()}


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
        schema_of(tenant.placement, tenant.placement_name)  # refuses a database source
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
    return mover.counts(mover.source)


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
        for table in mover.tables:
            capture.drop_triggers(
                schema=mover.source, table=table.db_table, tenant_id=tenant.pk, using=owner
            )
        capture.unfreeze(tenant_id=tenant.pk, using=owner)
        deleted: dict[str, int] = {}
        if move.step not in ("", PLAN):  # before prepare the target may hold another's rows
            with unscoped(reason=mover.reason("roll back: delete the target's copies")):
                deleted = mover.rows.delete_all(mover.target)
        capture.forget_tenant(tenant_id=tenant.pk, using=owner)
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
