"""`tenants move`: shared -> schema -> shared keeps ids and rows, verifies, empties the source,
records and audits each step; refusals; --dry-run, --status, --rollback."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from django.db import OperationalError, connection, connections, transaction

from tenants.context import tenant_context, unscoped
from tenants.exceptions import MoveFailed
from tenants.models import AuditEvent, PlacementMove, Tenant
from tenants.placement import capture
from tenants.placement.capture import is_frozen_error
from tenants.placement.moving import CATCHUP, COPY, FINAL, STEPS, SWITCH, tenant_move
from tenants.placement.rows import one_snapshot
from tests.placement.move_support import (
    app_rows,
    clean_up,
    placed_rows,
    private_rows,
    seed,
    triggers,
)
from tests.rls.support import COMMITTED, owner_execute, plain_connection
from tests.tenants.cli_support import Terminal, refused, tenants
from workflows.models import Workflow, WorkflowRun

pytestmark = COMMITTED


@pytest.fixture
def moving():
    yield
    clean_up()


@pytest.fixture
def two(moving):
    acme = Tenant.objects.create(slug="acme", external_id="acme", name="Acme")
    other = Tenant.objects.create(slug="other", external_id="other", name="Other")
    seed(acme, workflows=6, runs=3)
    seed(other, workflows=4, runs=1)
    return acme, other


def test_there_and_back_keeps_ids_and_rows_and_empties_the_source(two):
    acme, other = two
    before, other_before = app_rows(acme), app_rows(other)
    assert placed_rows(acme.pk).keys() == {"public"}

    out = json.loads(tenants("move", "acme", "--to", "schema", "pmove_one", "--json")[0])
    assert out["steps"] == list(STEPS)
    assert out["stats"]["copied"] == {
        "accounts_membership": 0,
        "workflows_workflow": 6,
        "workflows_workflowrun": 18,
    }
    acme.refresh_from_db()
    assert (acme.placement, acme.placement_name) == ("schema", "pmove_one")
    # Every row in the schema only, ids as they were; the application sees the same rows.
    assert placed_rows(acme.pk).keys() == {"pmove_one"}
    assert app_rows(acme) == before
    assert app_rows(other) == other_before and placed_rows(other.pk).keys() == {"public"}
    assert triggers() == [] and private_rows() == (0, 0)

    out = json.loads(tenants("move", "acme", "--to", "shared", "--json")[0])
    assert out["outcome"] == "done"
    assert placed_rows(acme.pk).keys() == {"public"}
    assert app_rows(acme) == before
    assert triggers() == [] and private_rows() == (0, 0)
    moves = PlacementMove.objects.filter(tenant=acme).order_by("id")
    assert [(m.source_kind, m.target_kind, m.step, m.outcome) for m in moves] == [
        ("shared", "schema", "done", "done"),
        ("schema", "shared", "done", "done"),
    ]
    actions = list(
        AuditEvent.objects.filter(tenant_id_value=acme.pk, action__startswith="tenant.move.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == [f"tenant.move.{s}" for s in STEPS] * 2
    # The verified checksums are the same on the way there and back.
    assert moves[0].stats["verified"] == moves[1].stats["verified"]
    # New rows after the move get fresh ids from the shared sequence (one id space).
    seed(acme, workflows=1, runs=0, tag="after ")
    assert len(app_rows(acme)["workflows_workflow"]) == 7


def test_dry_run_changes_nothing_and_status_lists_moves(two):
    acme, _ = two
    out, _ = tenants("move", "acme", "--to", "schema", "pmove_one", "--dry-run")
    assert "would move acme from shared to schema:pmove_one" in out
    assert "workflows_workflow 6" in out
    assert not PlacementMove.objects.exists() and triggers() == []
    assert tenants("move", "--status")[0].strip() == "(no moves)"
    tenants("move", "acme", "--to", "schema", "pmove_one")
    status = json.loads(tenants("move", "--status", "acme", "--json")[0])
    assert [(m["target"], m["outcome"]) for m in status] == [("schema:pmove_one", "done")]
    assert tenants("move", "acme", "--to", "schema", "pmove_one")[0].startswith(
        "tenants move: nothing to do"
    )


def test_refusals(two):
    refused("move", "acme", "--to", "schema", "Bad-Name", match="Invalid schema name")
    refused("move", "acme", "--to", "shared", "x", match="takes no name")
    refused("move", "acme", "--to", "schema", match="needs a name")
    refused("move", "acme", "--to", "moon", "x", match="Unknown destination")
    refused("move", "acme", "--rollback", match="no unfinished move")
    refused("move", "nobody", "--to", "shared", match="nobody")


def test_one_process_at_a_time(two):
    acme, _ = two
    capture.ensure_objects(using="owner")
    with plain_connection(as_owner=True) as other_process, other_process.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_lock(ameide_private.placement_lock_key(%s) + 1)", [acme.pk]
        )
        refused("move", "acme", "--to", "schema", "pmove_one", match="Another process")
    tenants("move", "acme", "--to", "schema", "pmove_one")
    refused("move", "acme", "--to", "node", "w1:5432", match="needs a Citus coordinator")


def _move(tenant, *, after_step, kind="schema", name="pmove_one"):
    return tenant_move(
        tenant=Tenant.objects.get(pk=tenant.pk),
        kind=kind,
        name=name,
        owner="owner",
        after_step=after_step,
    )


def test_a_difference_found_by_verify_stops_the_move_and_lifts_the_freeze(two):
    acme, _ = two

    def corrupt(step):
        if step == FINAL:  # frozen, caught up: change the target behind the move's back
            owner_execute(
                "UPDATE pmove_one.workflows_workflow SET name = 'tampered' "
                "WHERE id = (SELECT min(id) FROM pmove_one.workflows_workflow)"
            )

    with pytest.raises(MoveFailed, match="verify: differ in workflows_workflow"):
        _move(acme, after_step=corrupt)
    record = PlacementMove.objects.get(tenant=acme)
    assert (record.step, record.finished_at) == (CATCHUP, None)
    assert "workflows_workflow" in record.error
    acme.refresh_from_db()
    assert acme.placement == "shared"  # never switched
    assert private_rows()[1] == 0  # the freeze is lifted: the tenant writes
    seed(acme, workflows=1, runs=0, tag="after verify ")
    # The target's copy cannot be trusted: roll back, then move again.
    tenants("move", "acme", "--rollback")
    tenants("move", "acme", "--to", "schema", "pmove_one")
    assert placed_rows(acme.pk).keys() == {"pmove_one"}
    assert len(app_rows(acme)["workflows_workflow"]) == 7


def test_a_transaction_begun_before_the_switch_cannot_write_to_the_source(two):
    """It resolved its search path to the source; after the switch its write is refused (the
    source stays frozen) and the clean-up waits for it to end."""
    acme, _ = two
    before = app_rows(acme)
    began, switched = threading.Event(), threading.Event()
    outcome: list[str] = []

    def stale() -> None:
        try:
            with tenant_context(acme), transaction.atomic():
                # Routed to the shared tables, touching another table than the one it will
                # write (a lock on that table would hold up its triggers' removal anyway).
                list(WorkflowRun.objects.all()[:1])
                began.set()
                assert switched.wait(60)
                # Long enough for a clean-up that did not wait to drop the triggers first.
                time.sleep(0.5)
                try:
                    with transaction.atomic():
                        Workflow.objects.create(name="from before the switch")
                    outcome.append("written")
                except OperationalError as exc:
                    outcome.append("frozen" if is_frozen_error(exc) else repr(exc))
        finally:
            connections.close_all()

    thread = threading.Thread(target=stale)
    thread.start()
    assert began.wait(60)

    def at(step):
        if step == SWITCH:
            switched.set()

    summary = _move(acme, after_step=at)
    thread.join()
    assert outcome == ["frozen"]
    assert summary.outcome == "done"
    assert placed_rows(acme.pk).keys() == {"pmove_one"}
    assert app_rows(acme) == before


def test_a_process_holding_the_shared_row_reads_the_source_and_cannot_write_there(two):
    """The backend routes a tenant whose row says the shared tables without asking the
    database: a process holding the row from before the switch still reads the shared
    tables, where the rows stay, frozen (writes refused), for TENANCY_MOVE_STALE_SECONDS."""
    acme, _ = two
    before = app_rows(acme)
    stale = Tenant.objects.get(pk=acme.pk)  # placement: shared
    seen: dict[str, object] = {}

    def at(step):
        if step == SWITCH:
            with tenant_context(stale):
                seen["names"] = sorted(Workflow.objects.values_list("name", flat=True))
                with connection.cursor() as cursor:
                    cursor.execute("SELECT current_schemas(false)::text")
                    seen["path"] = cursor.fetchone()[0]
            try:
                with tenant_context(stale), transaction.atomic():
                    Workflow.objects.create(name="from a stale process")
                seen["write"] = "written"
            except OperationalError as exc:
                seen["write"] = "frozen" if is_frozen_error(exc) else repr(exc)
            with tenant_context(Tenant.objects.get(pk=acme.pk)), connection.cursor() as cursor:
                cursor.execute("SELECT current_schemas(false)::text")
                seen["fresh path"] = cursor.fetchone()[0]

    summary = _move(acme, after_step=at)
    assert summary.outcome == "done"
    assert seen["path"] == "{public}" and seen["fresh path"] == "{pmove_one,public}"
    assert seen["names"] == sorted(w[1] for w in before["workflows_workflow"])
    assert seen["write"] == "frozen"
    assert placed_rows(acme.pk).keys() == {"pmove_one"}
    assert app_rows(acme) == before


def test_a_name_given_up_and_taken_again_during_the_move_is_replayed(two):
    """Deleted and made again under the same name (a unique value per tenant) after the copy:
    the replay deletes before it inserts, so the new row can take the name."""
    acme, _ = two

    def churn(step):
        if step == COPY:
            with tenant_context(acme):
                Workflow.objects.get(name="acme 0").delete()
                Workflow.objects.create(name="acme 0", description="again")
                Workflow.objects.filter(name="acme 1").update(name="acme 1 renamed")
                Workflow.objects.filter(name="acme 2").update(name="acme 1")

    _move(acme, after_step=churn)
    assert placed_rows(acme.pk).keys() == {"pmove_one"}
    with tenant_context(Tenant.objects.get(pk=acme.pk)):
        names = dict(Workflow.objects.values_list("name", "description"))
    assert names["acme 0"] == "again" and "acme 1 renamed" in names and "acme 2" not in names
    assert len(names) == 6


def test_a_terminal_gets_a_progress_bar_and_a_pipe_plain_lines(two):
    err = io.StringIO()
    out, _ = tenants("move", "acme", "--to", "schema", "pmove_one", stdout=Terminal(), stderr=err)
    assert "move acme" in err.getvalue()  # the bar over the steps, on stderr
    assert "writes paused" in out and "rows copied" in out
    out, err_text = tenants("move", "acme", "--to", "shared")
    assert err_text == "" and out.splitlines()[0].startswith("plan")


def test_the_initial_copy_reads_one_snapshot():
    """Its batches run in one REPEATABLE READ transaction (keys between tables hold)."""
    with one_snapshot(), unscoped(reason="test: the copy's isolation"), connection.cursor() as c:
        c.execute("SHOW transaction_isolation")
        assert c.fetchone() == ("repeatable read",)
    with unscoped(reason="test: and after it"), connection.cursor() as c:
        c.execute("SHOW transaction_isolation")
        assert c.fetchone() == ("read committed",)
