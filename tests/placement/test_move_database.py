"""`tenants move` to and from a dedicated database: shared -> `far` (the other server) -> shared
and schema -> `far` -> schema keep ids, rows and checksums, empty the source and advance the
target's sequences; memberships stay in `default`; a process holding the Tenant row it loaded
before the switch is refused at the source until the clean-up; rollback before the switch."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connections

from accounts.models import Membership
from tenants.context import tenant_context, unscoped
from tenants.models import AuditEvent, PlacementMove, Tenant
from tenants.placement.capture import is_frozen_error
from tenants.placement.moving import STEPS, SWITCH, VERIFY, tenant_move
from tests import dedicated
from tests.conftest import make_member
from tests.placement.move_support import (
    app_rows,
    clean_up,
    placed_rows,
    private_rows,
    seed,
    triggers,
)
from tests.tenants.cli_support import refused, tenants
from workflows.models import Workflow

pytestmark = [
    dedicated.NEEDED,
    pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES),
]
FAR = f"database:{dedicated.FAR}"


@pytest.fixture
def two():
    acme = Tenant.objects.create(slug="acme", external_id="acme", name="Acme")
    other = Tenant.objects.create(slug="other", external_id="other", name="Other")
    seed(acme, workflows=6, runs=3)
    seed(other, workflows=4, runs=1)
    yield acme, other
    clean_up()


def _memberships(tenant: Tenant) -> list[tuple]:
    """The tenant's memberships and the schema each is in (read past the placement)."""
    with unscoped(reason="test: where memberships are"), connections["default"].cursor() as c:
        found = []
        for schema in ("public", "pmove_one"):
            c.execute("SELECT to_regnamespace(%s) IS NOT NULL", [schema])
            if c.fetchone()[0]:
                c.execute(
                    f'SELECT %s, id, user_id FROM "{schema}".accounts_membership '  # noqa: S608
                    "WHERE tenant_id = %s ORDER BY id",
                    [schema, tenant.pk],
                )
                found += c.fetchall()
    return found


def _unpinned_private_functions(owner: str) -> list[str]:
    """What `tenants check` (tenants.db.catalog) refuses in the private schema."""
    with connections[owner].cursor() as c:
        c.execute(
            "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'ameide_private'::regnamespace "
            "AND NOT (p.prosecdef AND coalesce(p.proconfig, '{}') "
            "@> ARRAY['search_path=pg_catalog, pg_temp'])"
        )
        return [name for (name,) in c.fetchall()]


def _actions(tenant: Tenant) -> list[str]:
    return list(
        AuditEvent.objects.filter(tenant_id_value=tenant.pk, action__startswith="tenant.move.")
        .order_by("id")
        .values_list("action", flat=True)
    )


def test_shared_to_the_other_server_and_back_keeps_ids_rows_and_checksums(two):
    acme, other = two
    before, other_before = app_rows(acme), app_rows(other)

    out = json.loads(tenants("move", "acme", "--to", "database", dedicated.FAR, "--json")[0])
    assert out["steps"] == list(STEPS) and out["target"] == FAR
    # Placed tables only: memberships stay in `default`.
    assert out["stats"]["copied"] == {"workflows_workflow": 6, "workflows_workflowrun": 18}
    acme.refresh_from_db()
    assert (acme.placement, acme.placement_name) == ("database", dedicated.FAR)
    assert placed_rows(acme.pk).keys() == {FAR}
    assert app_rows(acme) == before
    assert app_rows(other) == other_before and placed_rows(other.pk).keys() == {"public"}
    assert triggers() == [] and private_rows() == (0, 0)
    # The far database's sequences were moved past the ids copied into it: a new row there
    # takes an id none of the tenant's rows has.
    highest = max(i for i, *_ in before["workflows_workflow"])
    assert out["stats"]["sequences"]["workflows_workflow"] >= highest
    seed(Tenant.objects.get(pk=acme.pk), workflows=1, runs=1, tag="in far ")
    after = app_rows(acme)
    assert len(after["workflows_workflow"]) == 7
    assert max(i for i, *_ in after["workflows_workflow"]) > highest

    out = json.loads(tenants("move", "acme", "--to", "shared", "--json")[0])
    assert (out["source"], out["outcome"]) == (FAR, "done")
    assert placed_rows(acme.pk).keys() == {"public"}
    assert app_rows(acme) == after  # the row made in far too, with its id
    assert triggers() == [] and private_rows() == (0, 0)
    # And the shared sequence past the ids made in far.
    seed(Tenant.objects.get(pk=acme.pk), workflows=1, runs=0, tag="back ")
    assert len(app_rows(acme)["workflows_workflow"]) == 8
    moves = PlacementMove.objects.filter(tenant=acme).order_by("id")
    assert [(m.source_kind, m.target_kind, m.outcome) for m in moves] == [
        ("shared", "database", "done"),
        ("database", "shared", "done"),
    ]
    assert _actions(acme) == [f"tenant.move.{s}" for s in STEPS] * 2
    # The capture's functions pass `tenants check`'s rule for the private schema, in both
    # databases that held a source.
    for owner in ("owner", f"{dedicated.ALIASES[1]}_owner"):
        assert _unpinned_private_functions(owner) == []
    # Each side's checksum was computed by its own server; there and back they are the
    # same for the rows both moves carried (the second move carried one workflow more).
    there, back = moves[0].stats["verified"], moves[1].stats["verified"]
    assert there["workflows_workflow"]["rows"] + 1 == back["workflows_workflow"]["rows"]


def test_schema_to_the_other_server_and_back_moves_memberships_to_and_from_the_shared_tables(
    two,
):
    acme, _ = two
    make_member(tenant=acme, username="ada")
    tenants("move", "acme", "--to", "schema", "pmove_one")
    before = app_rows(acme)
    members = _memberships(acme)
    assert [m[0] for m in members] == ["pmove_one"]

    out = json.loads(tenants("move", "acme", "--to", "database", dedicated.FAR, "--json")[0])
    assert out["stats"]["copied"] == {
        "accounts_membership": 1,
        "workflows_workflow": 6,
        "workflows_workflowrun": 18,
    }
    assert placed_rows(acme.pk).keys() == {FAR}
    assert app_rows(acme) == before
    # The membership is in the shared table now, with its id; admission finds it.
    assert _memberships(acme) == [("public", *members[0][1:])]
    with tenant_context(Tenant.objects.get(pk=acme.pk)):
        assert Membership.objects.filter(user__username="ada").exists()
    assert triggers() == [] and private_rows() == (0, 0)

    tenants("move", "acme", "--to", "schema", "pmove_one")
    assert placed_rows(acme.pk).keys() == {"pmove_one"}
    assert app_rows(acme) == before
    assert _memberships(acme) == members
    assert triggers() == [] and private_rows() == (0, 0)
    moves = PlacementMove.objects.filter(tenant=acme).order_by("id")
    assert moves[1].stats["verified"] == moves[2].stats["verified"]


def _stale_write_at_switch(stale: Tenant, outcome: list[str]):
    """A move's after_step hook: right after the switch, a process holding the Tenant row
    `stale` writes a workflow; `outcome` gets "written", "frozen" or the error."""

    def at(step):
        if step == SWITCH:
            try:
                with tenant_context(stale):
                    Workflow.objects.create(name="from a stale process")
                outcome.append("written")
            except OperationalError as exc:
                outcome.append("frozen" if is_frozen_error(exc) else repr(exc))

    return at


def test_a_process_holding_the_old_tenant_row_is_refused_at_the_source_until_the_clean_up(two):
    """The router follows the Tenant row a process loaded: one loaded before the switch still
    routes to the source, which stays frozen (503) until the clean-up, never taking the write."""
    acme, _ = two
    stale = Tenant.objects.get(pk=acme.pk)  # placement: shared
    outcome: list[str] = []
    at = _stale_write_at_switch(stale, outcome)

    summary = tenant_move(
        tenant=acme, kind="database", name=dedicated.FAR, owner="owner", after_step=at
    )
    assert summary.outcome == "done"
    assert outcome == ["frozen"]
    assert placed_rows(acme.pk).keys() == {FAR}
    assert "from a stale process" not in [w[1] for w in app_rows(acme)["workflows_workflow"]]


def test_from_a_schema_to_a_database_the_shared_tables_are_guarded_too(two):
    """From a schema, a process holding the old row routes placed models to `default`, whose
    search path is the shared tables' from the switch on: frozen there too until the clean-up."""
    acme, _ = two
    tenants("move", "acme", "--to", "schema", "pmove_one")
    stale = Tenant.objects.get(pk=acme.pk)
    outcome: list[str] = []
    at = _stale_write_at_switch(stale, outcome)

    tenant_move(
        tenant=Tenant.objects.get(pk=acme.pk),
        kind="database",
        name=dedicated.FAR,
        owner="owner",
        after_step=at,
    )
    assert outcome == ["frozen"]
    assert placed_rows(acme.pk).keys() == {FAR}
    assert triggers() == [] and private_rows() == (0, 0)


def test_rollback_before_the_switch_leaves_the_tenant_where_it_was(two):
    acme, _ = two
    before = app_rows(acme)

    def stop(step):
        if step == VERIFY:
            raise RuntimeError("stopped at verify")

    with pytest.raises(RuntimeError):
        tenant_move(
            tenant=acme, kind="database", name=dedicated.FAR, owner="owner", after_step=stop
        )
    assert placed_rows(acme.pk).keys() == {"public", FAR}  # the copy is there, not in use
    tenants("move", "acme", "--rollback")
    acme.refresh_from_db()
    assert acme.placement == "shared"
    assert placed_rows(acme.pk).keys() == {"public"}
    assert triggers() == [] and private_rows() == (0, 0)
    seed(acme, workflows=1, runs=0, tag="after the rollback ")  # not frozen
    assert len(app_rows(acme)["workflows_workflow"]) == len(before["workflows_workflow"]) + 1


def test_refusals_and_dry_run(two):
    refused("move", "acme", "--to", "database", "moon", match="No dedicated database 'moon'")
    refused("move", "acme", "--to", "database", match="needs a name")
    out, _ = tenants("move", "acme", "--to", "database", dedicated.FAR, "--dry-run")
    assert f"would move acme from shared to {FAR}" in out
    assert "workflows_workflow 6" in out and "accounts_membership" not in out
    assert not PlacementMove.objects.exists() and triggers() == []


def test_from_one_dedicated_database_to_another(two):
    acme, _ = two
    before = app_rows(acme)
    tenants("move", "acme", "--to", "database", dedicated.NEAR)
    assert placed_rows(acme.pk).keys() == {f"database:{dedicated.NEAR}"}
    out = json.loads(tenants("move", "acme", "--to", "database", dedicated.FAR, "--json")[0])
    assert out["stats"]["copied"] == {"workflows_workflow": 6, "workflows_workflowrun": 18}
    assert placed_rows(acme.pk).keys() == {FAR}
    assert app_rows(acme) == before
    assert triggers() == [] and private_rows() == (0, 0)
