"""`tenants move`: shared -> schema -> shared keeps ids and rows, verifies, empties the source,
records and audits each step; refusals; --dry-run, --status, --rollback."""

from __future__ import annotations

import json

import pytest

from tenants.models import AuditEvent, PlacementMove, Tenant
from tenants.placement import capture
from tenants.placement.moving import STEPS
from tests.placement.move_support import (
    app_rows,
    clean_up,
    placed_rows,
    private_rows,
    seed,
    triggers,
)
from tests.rls.support import COMMITTED, plain_connection
from tests.tenants.cli_support import refused, tenants

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
    refused("move", "acme", "--to", "node", "w1:5432", match="Citus only")
