"""The run worker: claims queued runs fairly, runs each in its own tenant's context, fails closed.

One loop per worker process (`manage.py runworker`). Each turn, outside any tenant:
1. reap: tickets whose lease lapsed (their worker died or hung) are retried, or failed once
   they are out of attempts or past their deadline;
2. claim: the queued ticket with the lowest position in its tenant's queue (round robin across
   tenants), locked with FOR UPDATE SKIP LOCKED so that two workers never take the same one;
3. admit: the ticket's tenant must exist and be active, and the run must be that tenant's;
   otherwise the ticket is refused (an audit row) and dropped, and nothing runs;
4. execute inside `tenant_context(tenant)`: one short transaction per step, each of which first
   renews the lease *only if the ticket still carries this worker's attempt* (fencing), so a
   worker that lost its run stops without writing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from tenants.actor import acting
from tenants.audit import record_event
from tenants.context import current_scope, current_tenant, no_tenant, tenant_context
from tenants.models import Tenant
from tenants.placement.router import placed_atomic, tenant_atomic
from workflows import steps
from workflows.errors import InvalidDefinition
from workflows.models import RunTicket, WorkflowRun

logger = logging.getLogger("ameide.worker")
TICKETS = RunTicket._meta.db_table
_WAIT_SLICE_SECONDS = 0.2
STEPS_PER_TRANSACTION = 50
# What _advance returns when it stopped only to commit: a wait of no time.
_NEXT_TRANSACTION = steps.Instruction("wait", "", 0.0)


@dataclass(frozen=True, slots=True)
class Claim:
    ticket_id: int
    tenant_ref: int | None
    run_ref: int
    attempt: int


class ContextLeak(RuntimeError):
    """A turn of the loop began inside a tenant's context: refuse to go on rather than leak."""


class _Lost(Exception):
    """This worker no longer holds the run (reaped, retried elsewhere, or cancelled)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_forever(*, name: str, stop: Callable[[], bool], poll_seconds: float) -> None:
    """Work until `stop()` says so; an empty queue is polled every `poll_seconds`."""
    while not stop():
        try:
            worked = run_once(name=name)
        except (OperationalError, InterfaceError):
            # The database went away: drop the connection and try again after the pause (a
            # run in hand keeps its ticket; its lease lapses and it is retried).
            logger.warning("database unavailable; the worker waits", exc_info=True)
            connection.close()
            worked = False
        if not worked:
            time.sleep(poll_seconds)


def run_once(*, name: str) -> bool:
    """One turn: reap, then claim and process at most one ticket. True when one was claimed."""
    if current_scope().tenant is not None or current_scope().is_bypass:
        raise ContextLeak("the worker loop started a turn inside a tenant context")
    with no_tenant(), acting(name=f"worker {name}"):
        reap()
        claim = _claim(name=name)
        if claim is None:
            return False
        try:
            _process(claim)
        except Exception:
            # A bug in one run must not stop the worker, nor leave its context behind: the
            # with-blocks have reset it; the ticket's lease lapses and the reaper decides.
            logger.exception("run %s failed inside the worker", claim.run_ref)
    return True


def _claim(*, name: str) -> Claim | None:
    lease = timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TICKETS} SET state = 'running', attempt = attempt + 1, worker = %s, "
            "lease_until = now() + %s "
            f"WHERE id = (SELECT id FROM {TICKETS} WHERE state = 'queued' "
            "ORDER BY position, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING id, tenant_ref, run_ref, attempt",
            [name[:100], lease],
        )
        row = cursor.fetchone()
    return Claim(*row) if row else None


def _refuse(claim: Claim, *, reason: str, tenant: Tenant | None) -> None:
    """Drop a ticket that must not run; the refusal is an audit row in the same transaction."""
    with no_tenant(), transaction.atomic():
        RunTicket.objects.filter(pk=claim.ticket_id).delete()
        record_event(
            action="task.refused",
            reason=reason,
            tenant=tenant,
            details={"run": claim.run_ref, "tenant_ref": claim.tenant_ref},
        )
    logger.warning("refused the ticket of run %s: %s", claim.run_ref, reason)


def _process(claim: Claim) -> None:
    if claim.tenant_ref is None:
        _refuse(claim, reason="enqueued with no tenant", tenant=None)
        return
    tenant = Tenant.objects.filter(pk=claim.tenant_ref).first()
    if tenant is None:
        _refuse(claim, reason="its tenant does not exist", tenant=None)
        return
    if not tenant.is_active:
        _refuse(claim, reason=f"its tenant is {tenant.status}", tenant=tenant)
        return
    with tenant_context(tenant):
        # Under the tenant, SQL shows only its runs: a ticket naming another tenant's run (a
        # forged or corrupted payload) finds nothing here and is refused.
        if not WorkflowRun.objects.filter(pk=claim.run_ref).exists():
            _refuse(claim, reason="its run is not a run of its tenant", tenant=tenant)
            return
        try:
            _execute(claim, tenant)
        except _Lost:
            logger.info("run %s: lost to another worker or cancelled; stopped", claim.run_ref)


def _hold(claim: Claim) -> None:
    """Renew the lease while this attempt still holds the ticket (locks it to the transaction's
    end); raises _Lost otherwise. Call inside the transaction that writes the run."""
    lease = timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TICKETS} SET lease_until = now() + %s "
            "WHERE id = %s AND attempt = %s AND state = 'running' RETURNING id",
            [lease, claim.ticket_id, claim.attempt],
        )
        if cursor.fetchone() is None:
            raise _Lost()


def _log(run: WorkflowRun, where: str, event: str, **extra) -> None:
    run.log = [*run.log, {"at": timezone.now().isoformat(), "step": where, "event": event, **extra}]


_STATE_FIELDS = [
    "status",
    "output",
    "error",
    "step",
    "log",
    "started_at",
    "finished_at",
    "attempts",
]


def _finish(claim: Claim, run: WorkflowRun, *, status: str, error: str = "") -> None:
    """Record the run's end, drop its ticket and write the audit row: one transaction."""
    run.status = status
    run.error = error[:10_000]
    run.finished_at = timezone.now()
    _log(run, "", status, **({"error": run.error} if error else {}))
    run.save(update_fields=_STATE_FIELDS)
    RunTicket.objects.filter(pk=claim.ticket_id).delete()
    record_event(
        action=f"run.{status}",
        tenant=current_tenant(),
        reason=run.error,
        details={"object": "workflows.workflowrun", "id": run.pk, "attempts": run.attempts},
    )


def _execute(claim: Claim, tenant: Tenant) -> None:
    with tenant_atomic():
        _hold(claim)
        run = (
            WorkflowRun.objects.select_for_update().select_related("workflow").get(pk=claim.run_ref)
        )
        if run.status in WorkflowRun.FINISHED:
            RunTicket.objects.filter(pk=claim.ticket_id).delete()
            return
        try:
            program = steps.parse(run.workflow.definition)
        except InvalidDefinition as exc:
            run.attempts += 1
            run.started_at = run.started_at or timezone.now()
            _finish(
                claim, run, status=WorkflowRun.Status.FAILED, error=f"invalid definition: {exc}"
            )
            return
        run.started_at = run.started_at or timezone.now()
        run.attempts += 1
        run.status = WorkflowRun.Status.RUNNING
        deadline = run.started_at + timedelta(seconds=program.timeout_seconds)
        _log(run, "", "started", attempt=claim.attempt)
        RunTicket.objects.filter(pk=claim.ticket_id).update(deadline=deadline)
        instruction = _advance(claim, run, program, deadline)
    while instruction is not None:
        _wait(claim, seconds=instruction.arg, deadline=deadline)
        with tenant_atomic():
            _hold(claim)
            run = WorkflowRun.objects.select_for_update().get(pk=claim.run_ref)
            instruction = _advance(claim, run, program, deadline)


def _advance(claim: Claim, run: WorkflowRun, program: steps.Program, deadline):
    """Apply instructions in the caller's transaction until the run ends or pauses (returns
    None) or reaches a wait (returns it, to sleep after the commit). Steps that take no time
    share one transaction, up to STEPS_PER_TRANSACTION, so a run costs a few commits."""
    for _ in range(STEPS_PER_TRANSACTION):
        if run.cancel_requested:
            _finish(claim, run, status=WorkflowRun.Status.CANCELLED)
            return None
        if timezone.now() >= deadline:
            _finish(claim, run, status=WorkflowRun.Status.FAILED, error="timed out")
            return None
        if run.step >= len(program.instructions):
            _finish(claim, run, status=WorkflowRun.Status.SUCCEEDED)
            return None
        instruction = program.instructions[run.step]
        outcome = _apply(run, instruction)
        if outcome == "failed":
            _finish(claim, run, status=WorkflowRun.Status.FAILED, error=str(instruction.arg))
            return None
        if outcome == "waiting":
            run.status = WorkflowRun.Status.WAITING
            run.save(update_fields=_STATE_FIELDS)
            RunTicket.objects.filter(pk=claim.ticket_id).update(
                state=RunTicket.State.WAITING, lease_until=None
            )
            return None
        if instruction.op == "wait":
            run.save(update_fields=_STATE_FIELDS)
            return instruction
    run.save(update_fields=_STATE_FIELDS)
    return _NEXT_TRANSACTION


def _apply(run: WorkflowRun, instruction: steps.Instruction) -> str:
    """Advance the run by one instruction (in memory); returns "next", "waiting" or "failed"."""
    op, where = instruction.op, instruction.where
    if op == "jump_unless":
        taken = steps.holds(instruction.arg, input=run.input, values=run.output)
        _log(run, where, "branch", taken="then" if taken else "else")
        run.step = run.step + 1 if taken else instruction.target
        return "next"
    if op == "jump":
        run.step = instruction.target
        return "next"
    if op == "approval":
        if instruction.arg not in run.approvals:
            _log(run, where, "waiting for approval", approval=instruction.arg)
            return "waiting"
        _log(run, where, "approved", approval=instruction.arg, by=run.approvals[instruction.arg])
    elif op == "set":
        run.output = {**run.output, **instruction.arg}
        _log(run, where, "set", keys=sorted(instruction.arg))
    elif op == "fail":
        _log(run, where, "fail")
        return "failed"
    elif op == "wait":
        _log(run, where, "wait", seconds=instruction.arg)
    else:
        _log(run, where, "mark", name=instruction.arg)
    run.step += 1
    return "next"


def _wait(claim: Claim, *, seconds: float, deadline) -> None:
    """Sleep in slices, renewing the lease and noticing a cancel or the deadline between them."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(left, _WAIT_SLICE_SECONDS))
        with tenant_atomic():
            _hold(claim)
            if timezone.now() >= deadline:
                return  # the step loop fails the run
            if WorkflowRun.objects.filter(pk=claim.run_ref, cancel_requested=True).exists():
                return


def reap() -> int:
    """Retry or fail runs whose worker stopped renewing its lease; returns how many."""
    reaped = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, tenant_ref, run_ref, attempt, deadline FROM {TICKETS} "
                "WHERE state = 'running' AND lease_until < now() "
                "ORDER BY lease_until LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            row = cursor.fetchone()
            if row is None:
                return reaped
            ticket_id, tenant_ref, run_ref, attempt, deadline = row
            reaped += 1
            _reap_one(
                Claim(ticket_id, tenant_ref, run_ref, attempt),
                timed_out=deadline is not None and deadline <= timezone.now(),
            )


def _reap_one(claim: Claim, *, timed_out: bool) -> None:
    tenant = Tenant.objects.filter(pk=claim.tenant_ref).first() if claim.tenant_ref else None
    if tenant is None or not tenant.is_active:
        _refuse(claim, reason="reaped: its tenant is gone or not active", tenant=tenant)
        return
    # The caller's transaction holds the ticket on `default`; the run may be in the tenant's
    # dedicated database (tenants.placement).
    with tenant_context(tenant), placed_atomic():
        run = WorkflowRun.objects.select_for_update().filter(pk=claim.run_ref).first()
        if run is None:
            _refuse(claim, reason="reaped: its run is not a run of its tenant", tenant=tenant)
            return
        out_of_attempts = claim.attempt >= settings.WORKFLOW_RUN_MAX_ATTEMPTS
        if timed_out or out_of_attempts or run.cancel_requested:
            if run.cancel_requested:
                status, error = WorkflowRun.Status.CANCELLED, ""
            else:
                status = WorkflowRun.Status.FAILED
                error = "timed out" if timed_out else "its worker was lost too many times"
            _finish(claim, run, status=status, error=error)
            return
        _log(run, "", "worker lost; queued again", attempt=claim.attempt)
        run.status = WorkflowRun.Status.QUEUED
        run.save(update_fields=_STATE_FIELDS)
        # Back to the front of its tenant's queue: it was already served once.
        RunTicket.objects.filter(pk=claim.ticket_id).update(
            state=RunTicket.State.QUEUED, lease_until=None, worker="", position=1
        )
