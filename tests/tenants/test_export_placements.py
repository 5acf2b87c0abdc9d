"""Export and import of tenants in a dedicated schema or database (issue 12, items 2 and 5):
the export reads the rows where the tenant's placement keeps them, the round trip keeps ids
and history, and an import keeps an archived id only where no placement has it (the shared
tables, every dedicated schema, every dedicated database, whose own sequences it moves too)."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connections

from tenants.context import tenant_context
from tenants.lifecycle.exporting import tenant_export
from tenants.models import AuditEvent, Placement, Tenant
from tenants.placement.router import alias_of
from tests import dedicated
from tests.placement.move_support import MOVE_SCHEMAS, clean_up
from tests.tenants.another_database import in_database
from tests.tenants.cli_support import content, export, ids_of, import_, refused, tenants
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(databases=dedicated.DATABASES)
COMMITTED = pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)
SCHEMA = ("schema", "shared")
DATABASES = [(dedicated.NEAR, "shared"), (dedicated.FAR, "shared")]
PLACED = pytest.mark.parametrize(
    "placements", [SCHEMA, *DATABASES], indirect=True, ids=["schema", "near", "far"]
)
IN_A_SCHEMA = pytest.mark.parametrize("placements", [SCHEMA], indirect=True, ids=["schema"])
IN_A_DATABASE = pytest.mark.parametrize(
    "placements", DATABASES, indirect=True, ids=[dedicated.NEAR, dedicated.FAR]
)


@pytest.fixture
def moving():
    yield
    clean_up()


def history_of(tenant: Tenant, *, imported_from: str = "") -> list[tuple]:
    """The tenant's events (recorded here, or restored from the archive `imported_from`)."""
    with tenant_context(tenant):
        return sorted(
            AuditEvent.objects.filter(
                tenant_id_value=tenant.pk, imported_from=imported_from
            ).values_list("at", "action", "actor", "reason", "details"),
            key=repr,
        )


def placed_rows(tenant: Tenant) -> int:
    """The tenant's workflows where its placement keeps them (for a schema: not public)."""
    with tenant_context(tenant):
        return Workflow.objects.count()


@PLACED
def test_export_reads_the_rows_where_they_are(populated, tmp_path):
    alpha = populated["a"]
    assert alpha.placement != Placement.SHARED and placed_rows(alpha) == 3
    exported = export("alpha", tmp_path / "alpha.zip")
    assert {label: t["rows"] for label, t in exported["tables"].items()} == {
        "accounts.membership": 2,
        "workflows.workflow": 3,
        "workflows.workflowrun": 3,
    }
    assert exported["users"] == 2


@COMMITTED
@IN_A_SCHEMA
def test_a_schema_tenant_round_trip_keeps_ids_and_history(alpha_with_history, moving, tmp_path):
    """Export, purge, import: the tenant comes back in the shared tables with its ids, rows
    and history, and `tenants move` places it in a schema again, ids kept."""
    alpha = alpha_with_history["a"]
    assert alpha.placement == Placement.SCHEMA
    path = tmp_path / "alpha.zip"
    before, ids_before, history = content(alpha), ids_of(alpha), history_of(alpha)
    exported = export("alpha", path)
    assert exported["audit_events"] == len(history) == 2
    tenants("delete", "alpha")
    tenants("purge", "alpha", "--yes")

    imported = import_(path)
    copy = Tenant.objects.get(slug="alpha")
    assert copy.placement == Placement.SHARED
    assert ids_of(copy) == ids_before and content(copy) == before
    assert all(t["ids"] == "kept" for t in imported["tables"].values())
    assert history_of(copy, imported_from=exported["sha256"]) == history

    tenants("move", "alpha", "--to", "schema", MOVE_SCHEMAS[0])
    copy.refresh_from_db()
    assert (copy.placement, copy.placement_name) == (Placement.SCHEMA, MOVE_SCHEMAS[0])
    assert ids_of(copy) == ids_before and content(copy) == before


@COMMITTED
@IN_A_DATABASE
def test_a_database_tenant_round_trip_into_another_database(alpha_with_history, target, tmp_path):
    """Committed rows, so the export reads both databases in REPEATABLE READ transactions of
    its own; the import into another database (as tests/tenants/test_portable_ids.py does)
    keeps every id, the rows and the history."""
    alpha = alpha_with_history["a"]
    assert alpha.placement == Placement.DATABASE
    path = tmp_path / "alpha.zip"
    before, ids_before, history = content(alpha), ids_of(alpha), history_of(alpha)
    exported = export("alpha", path)
    assert exported["tables"]["workflows.workflow"]["rows"] == 3

    with in_database(target):
        imported = import_(path)
        copy = Tenant.objects.get(slug="alpha")
        assert copy.pk == alpha.pk and copy.placement == Placement.SHARED
        assert ids_of(copy) == ids_before and content(copy) == before
        assert all(t["ids"] == "kept" for t in imported["tables"].values())
        assert imported["ids"]["workflows.workflow"] == {"kept": 3, "renumbered": {}}
        assert history_of(copy, imported_from=exported["sha256"]) == history


@COMMITTED
@IN_A_DATABASE
def test_the_export_reads_one_snapshot_of_a_dedicated_database(populated, tmp_path):
    """A workflow and its run committed while the export reads the workflows are in neither
    table of the archive: the rows there are read in one REPEATABLE READ transaction."""
    alpha = populated["a"]

    def write_meanwhile() -> None:
        try:
            with tenant_context(alpha):
                workflow = Workflow.objects.create(name="Meanwhile")
                WorkflowRun.objects.create(workflow=workflow)
        finally:
            for alias in connections:
                connections[alias].close()

    def progress(rows, *, desc, total=None):
        if desc == "export workflows.workflowrun":
            writer = threading.Thread(target=write_meanwhile)
            writer.start()
            writer.join()
        return rows

    summary = tenant_export(tenant=alpha, output=tmp_path / "alpha.zip", progress=progress)
    assert placed_rows(alpha) == 4  # committed
    assert summary.tables["workflows.workflow"]["rows"] == 3
    assert summary.tables["workflows.workflowrun"]["rows"] == 3


@PLACED
def test_an_id_taken_in_a_dedicated_placement_is_found(populated, tmp_path):
    """The archive's ids are those of alpha's rows in its schema or database: an import under
    another slug must find them taken, though the shared tables do not have them."""
    alpha = populated["a"]
    path = tmp_path / "alpha.zip"
    export("alpha", path)
    taken = ids_of(alpha)["workflows"]
    refused(
        "import", str(path), "--slug", "alpha-copy", "--keep-ids",
        match=rf"workflows\.workflow ids {', '.join(map(str, taken))}\b",
    )  # fmt: skip
    assert not Tenant.objects.filter(slug="alpha-copy").exists()

    imported = import_(path, "--slug", "alpha-copy")
    copy = Tenant.objects.get(slug="alpha-copy")
    assert imported["ids"]["workflows.workflow"]["kept"] == 0
    assert sorted(imported["ids"]["workflows.workflow"]["renumbered"]) == sorted(map(str, taken))
    assert not set(ids_of(copy)["workflows"]) & set(taken)
    assert content(copy) == content(alpha)


@IN_A_DATABASE
def test_an_id_kept_in_the_shared_tables_is_not_handed_out_by_a_dedicated_database(
    populated, tmp_path
):
    """A dedicated database numbers its rows with its own sequences: the import moves them
    past the ids it keeps, so a tenant placed there never gets one of them afterwards."""
    alpha, bravo = populated["a"], populated["b"]
    with tenant_context(alpha):
        below = Workflow.objects.order_by("-pk").first().pk
    high = below + 1000
    with tenant_context(bravo):
        Workflow.objects.create(pk=high, name="High")
    path = tmp_path / "bravo.zip"
    export("bravo", path)
    tenants("delete", "bravo")
    tenants("purge", "bravo", "--yes")

    imported = import_(path)
    assert imported["ids"]["workflows.workflow"] == {"kept": 2, "renumbered": {}}
    with tenant_context(alpha):
        assert Workflow.objects.create(name="After the import").pk > high


def test_a_tenant_in_a_database_this_process_does_not_know_refuses_export_and_import(
    populated, tmp_path
):
    """Fail closed: its rows cannot be read, and ids there cannot be known to be free."""
    path = tmp_path / "bravo.zip"
    export("bravo", path)
    lost = Tenant.objects.create(
        slug="lost", name="Lost", placement=Placement.DATABASE, placement_name="nowhere"
    )
    refused(
        "export", "lost", "--output", str(tmp_path / "lost.zip"),
        match="Cannot export: .*'nowhere'",
    )  # fmt: skip
    assert not (tmp_path / "lost.zip").exists()
    refused("import", str(path), "--slug", "bravo-copy", match="Cannot check .*'nowhere'")
    assert not Tenant.objects.filter(slug="bravo-copy").exists()
    Tenant.objects.filter(pk=lost.pk).update(placement=Placement.SHARED, placement_name="")
    import_(path, "--slug", "bravo-copy")


@IN_A_DATABASE
def test_purge_deletes_the_rows_in_the_tenants_database(populated):
    """A dedicated database holds the tenant's workflows and runs: the purge deletes them
    there, not only what `default` holds (memberships), before the tenant row goes."""
    alpha, bravo = populated["a"], populated["b"]
    alias = alias_of(alpha)
    assert alias != "default" and placed_rows(alpha) == 3
    tenants("delete", "alpha", "--reason", "customer left")
    summary = json.loads(tenants("purge", "alpha", "--yes", "--json")[0])
    assert summary["tables"]["workflows.workflow"] == 3
    assert summary["tables"]["workflows.workflowrun"] == 3
    assert not Tenant.objects.filter(pk=alpha.pk).exists()
    # The stale object still signs alpha's scope, so RLS would show its rows if any were left.
    with tenant_context(alpha), connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM workflows_workflow")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM workflows_workflowrun")
        assert cursor.fetchone()[0] == 0
    assert placed_rows(bravo) == 1  # another tenant's rows stay
