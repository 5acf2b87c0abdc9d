"""Export from one database, import into another (issue 12, item 5): ids kept where free and
renumbered with a mapping where taken, sequences moved past what was kept (block-reserved
tenant ids included), the audit history carried along as imported events, archives of format
version 1 still imported, and crafted archives unable to plant history anywhere else."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, connections, transaction

from accounts.models import Membership, User
from tenants import services
from tenants.audit import imported_event_params
from tenants.context import tenant_context
from tenants.db import sequences
from tenants.db.signing import signed_fields
from tenants.lifecycle.archive import manifest_digest
from tenants.lifecycle.tables import canonical_line
from tenants.models import AuditEvent, Tenant
from tests.rls.support import owner_execute, plain_connection
from tests.tenants.another_database import in_database
from tests.tenants.cli_support import (
    content,
    database_state,
    export,
    ids_of,
    import_,
    refused,
    tenants,
)
from workflows.models import Workflow

FIXTURES = Path(__file__).parent / "fixtures"
V1_ARCHIVE = FIXTURES / "archive-v1.zip"  # written by the export of format version 1
COMMITTED = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


def history_of(tenant: Tenant) -> list[tuple]:
    with tenant_context(tenant):
        return sorted(
            AuditEvent.objects.filter(tenant_id_value=tenant.pk).values_list(
                "at", "action", "actor", "acting_as", "reason", "request_id", "details"
            ),
            key=repr,
        )


# --- another database -----------------------------------------------------------------------


@COMMITTED
def test_import_into_another_database_keeps_ids_and_history(alpha_with_history, target, tmp_path):
    alpha = alpha_with_history["a"]
    path = tmp_path / "alpha.zip"
    before, ids_before, history = content(alpha), ids_of(alpha), history_of(alpha)
    exported = export("alpha", path)  # its own event is not part of the archive
    assert exported["audit_events"] == 2 == len(history)
    users = {u.username: u.pk for u in User.objects.filter(username__in=["ann", "olga"])}

    with in_database(target):
        assert not Tenant.objects.exists()
        imported = import_(path)
        copy = Tenant.objects.get(slug="alpha")
        # Every id is kept: the tenant's, its rows', the users' the import created.
        assert copy.pk == alpha.pk
        assert ids_of(copy) == ids_before and content(copy) == before
        assert {u.username: u.pk for u in User.objects.all()} == users
        assert imported["users_created"] == 2
        for label in ("tenants.tenant", "accounts.user", "accounts.membership"):
            assert imported["ids"][label]["renumbered"] == {}, label
        assert imported["ids"]["workflows.workflow"] == {"kept": 3, "renumbered": {}}
        assert all(t["ids"] == "kept" for t in imported["tables"].values())

        # The history came along, as it was, marked as imported from this archive.
        assert history_of(copy) == sorted(
            [*history, *_native(copy)], key=repr
        )  # plus this database's own tenant.create and tenant.import
        restored = AuditEvent.objects.filter(imported_from=exported["sha256"])
        assert restored.count() == 2
        assert set(restored.values_list("tenant_id_value", "tenant_slug")) == {(copy.pk, "alpha")}
        assert {e.reason for e in restored} >= {"unpaid invoice ✓"}
        event = AuditEvent.objects.get(action="tenant.import")
        assert event.imported_from == "" and event.details["sha256"] == exported["sha256"]
        assert event.details["audit_events"] == 2 and event.details["format_version"] == 2

        # What is created afterwards gets ids above everything kept.
        with tenant_context(copy):
            later = Workflow.objects.create(name="Later")
        newcomer = User.objects.create_user(username="newcomer")
        with tenant_context(copy):
            membership = Membership.objects.create(user=newcomer)
        assert later.pk > max(ids_before["workflows"])
        assert membership.pk > max(ids_before["memberships"])
        assert membership.user_id > max(users.values())
        assert services.tenant_create(slug="later", name="Later").pk > copy.pk


def _native(tenant: Tenant) -> list[tuple]:
    with tenant_context(tenant):
        return list(
            AuditEvent.objects.filter(tenant_id_value=tenant.pk, imported_from="").values_list(
                "at", "action", "actor", "acting_as", "reason", "request_id", "details"
            )
        )


@COMMITTED
def test_taken_ids_are_renumbered_and_reported(alpha_with_history, target, tmp_path):
    alpha = alpha_with_history["a"]
    path = tmp_path / "alpha.zip"
    export("alpha", path)
    before, ids_before = content(alpha), ids_of(alpha)
    first, taken, last = ids_before["workflows"]
    olga = User.objects.get(username="olga")

    with in_database(target):
        # This database already has: the tenant's id, a workflow id and olga's user id.
        other = Tenant.objects.create(pk=alpha.pk, slug="other", external_id="other", name="O")
        zed = User.objects.create_user(username="zed", pk=olga.pk)
        with tenant_context(other):
            Workflow.objects.create(pk=taken, name="Other's")

        refused("import", str(path), "--keep-ids", match=rf"workflows\.workflow ids {taken}\b")
        assert not Tenant.objects.filter(slug="alpha").exists()

        imported = import_(path)
        copy = Tenant.objects.get(slug="alpha")
        moved = imported["ids"]["workflows.workflow"]["renumbered"]
        assert list(moved) == [str(taken)] and moved[str(taken)] > last
        assert imported["ids"]["workflows.workflow"]["kept"] == 2
        assert imported["ids"]["tenants.tenant"]["renumbered"] == {str(alpha.pk): copy.pk}
        assert copy.pk != alpha.pk
        new_olga = User.objects.get(username="olga")
        assert imported["ids"]["accounts.user"]["renumbered"] == {str(olga.pk): new_olga.pk}
        assert User.objects.get(pk=olga.pk) == zed  # the existing row is untouched
        # Runs follow their workflow to its new id; every other id is kept.
        renumbered = ids_of(copy)
        assert renumbered["workflows"] == sorted([first, last, moved[str(taken)]])
        assert {r for r, _ in renumbered["runs"]} == {r for r, _ in ids_before["runs"]}
        assert content(copy) == before
        with tenant_context(other):
            assert Workflow.objects.get().name == "Other's"
        assert imported["tables"]["workflows.workflow"]["ids"] == "renumbered"


@COMMITTED
def test_an_id_in_a_block_a_process_holds_is_never_kept(target, tmp_path):
    """Tenant ids are reserved in blocks (tenants.db.sequences): a free-looking id may sit in a
    running process's block, so an import keeps a tenant id only above all handed out."""
    path = tmp_path / "v1.zip"
    with in_database(target):
        held = sequences.next_id(model=Tenant)  # this process now holds the rest of a block
        inside = held + 4
        _rewrite_manifest(V1_ARCHIVE, path, source_id=inside)
        imported = import_(path)
        assert imported["ids"]["tenants.tenant"]["renumbered"] == {
            str(inside): Tenant.objects.get(slug="alpha").pk
        }
        # The block is handed out to its end without meeting the imported tenant's id.
        for number in range(sequences.BLOCK + 2):
            services.tenant_create(slug=f"t{number}", name="T")
        assert Tenant.objects.count() == sequences.BLOCK + 3


@COMMITTED
def test_a_sequence_moves_only_after_the_transactions_holding_its_ids(db):
    """An id handed to a transaction that is still running is in no table yet: reserve_ids
    waits for that transaction, so an import then sees its row (or its rollback), and no
    nextval() can come between the reading and the moving of the sequence."""
    sequence = "SELECT nextval(pg_get_serial_sequence('workflows_workflow', 'id'))"
    result = {}

    def reserve(to: int) -> None:
        try:
            result["mark"] = sequences.reserve_through(
                table="workflows_workflow", column="id", to=to
            )
        finally:
            connections.close_all()

    with plain_connection(as_owner=True) as holder, holder.transaction():
        held = holder.execute(sequence).fetchone()[0]
        thread = threading.Thread(target=reserve, args=(held + 10,))
        thread.start()
        _wait_for_a_lock_wait("reserve_ids")
        assert thread.is_alive() and "mark" not in result
    thread.join(timeout=60)
    assert result["mark"].handed_out == held
    assert owner_execute(sequence)[0][0] == held + 11


def _wait_for_a_lock_wait(query_part: str) -> None:
    """Until a backend running `query_part` waits for a lock (polled, no fixed delay)."""
    for _ in range(600):
        waiting = owner_execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s",
            [f"%{query_part}%"],
        )
        if waiting[0][0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no backend running {query_part} ever waited for a lock")


def _rewrite_manifest(source: Path, path: Path, **changes) -> None:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["source"].update(id=changes["source_id"])
    manifest["digest"] = manifest_digest(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# --- format version 1 -----------------------------------------------------------------------


def test_an_archive_of_format_version_1_still_imports(populated):
    imported = import_(V1_ARCHIVE, "--slug", "alpha-v1")
    copy = Tenant.objects.get(slug="alpha-v1")
    assert imported["audit_events"] == 0 and "accounts.user" not in imported["ids"]
    assert imported["users_created"] == 0  # ann and olga exist here: their accounts are used
    # The fixture was written from the same rows as `populated`, on another day.
    assert _timeless(content(copy)) == _timeless(content(populated["a"]))
    event = AuditEvent.objects.get(action="tenant.import", tenant_id_value=copy.pk)
    assert event.details["format_version"] == 1
    assert not AuditEvent.objects.filter(tenant_id_value=copy.pk).exclude(imported_from="").exists()


def _timeless(data: dict) -> dict:
    return {
        key: sorted(
            tuple(v for v in row if not isinstance(v, datetime) and "T" not in str(v)[10:11])
            for row in rows
        )
        for key, rows in data.items()
    }


# --- crafted archives -------------------------------------------------------------------


def _resign(path: Path, member: str, edit) -> None:
    """Edit one member and recompute its checksum, count and the manifest digest."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    lines = edit(members[member].decode().splitlines())
    members[member] = "".join(line + "\n" for line in lines).encode()
    manifest = json.loads(members["manifest.json"])
    entry = next(
        e
        for e in [*manifest["tables"], manifest["users"], manifest["audit"]]
        if e["file"] == member
    )
    entry.update(rows=len(lines), sha256=hashlib.sha256(members[member]).hexdigest())
    manifest["digest"] = manifest_digest(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    path.unlink()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _edit_rows(change):
    def edit(lines):
        rows = [json.loads(line) for line in lines]
        for row in rows:
            change(row)
        return [canonical_line(row) for row in rows]

    return edit


@pytest.fixture
def crafted(alpha_with_history, tmp_path) -> Path:
    path = tmp_path / "alpha.zip"
    export("alpha", path)
    return path


def test_crafted_history_lands_only_on_the_new_tenant_marked_as_imported(
    crafted, alpha_with_history
):
    bravo = alpha_with_history["b"]

    def forge(row):
        row.update(actor="platform-admin", action="unscoped", reason="planted")
        row["details"] = {"tenant": bravo.slug, "tenant_id": bravo.pk}

    _resign(crafted, "audit.jsonl", _edit_rows(forge))
    bravo_history = history_of(bravo)
    imported = import_(crafted, "--slug", "evil")
    evil = Tenant.objects.get(slug="evil")
    planted = AuditEvent.objects.filter(reason="planted")
    assert planted.count() == 2
    sha = imported["sha256"]
    assert set(planted.values_list("tenant_id_value", "tenant_slug", "imported_from")) == {
        (evil.pk, "evil", sha)
    }
    # Nothing imported anywhere else: not in bravo's history, not among the platform's events
    # (the import's own audited cross-tenant read is there, recorded here, not imported).
    assert history_of(bravo) == bravo_history
    elsewhere = AuditEvent.objects.exclude(imported_from="").exclude(tenant_id_value=evil.pk)
    assert not elsewhere.exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda row: row.update(tenant_id=2), "not an audit row"),
        (lambda row: row.update(tenant_slug="bravo"), "not an audit row"),
        (lambda row: row.update(imported_from=""), "not an audit row"),
        (lambda row: row.update(at="2999-01-01T00:00:00+00:00"), "dated in the future"),
        (lambda row: row.update(at="2026-01-01T02:00:00+02:00"), "canonical form"),
        (lambda row: row.update(actor="a\x1fb"), "characters the audit log does not store"),
        (lambda row: row.update(id=0), "positive integer"),
    ],
    ids=["tenant id", "tenant slug", "not imported", "future", "offset", "separator", "id 0"],
)
def test_crafted_history_is_refused_with_nothing_written(crafted, change, match):
    _resign(crafted, "audit.jsonl", _edit_rows(change))
    before = database_state()
    refused("import", str(crafted), "--slug", "evil", match=match)
    assert database_state() == before


def test_the_runtime_role_cannot_restore_history_of_its_choosing(alpha_with_history):
    """SQL injection's view: the door import_audit opens only for signed rows of a tenant
    created in the same transaction, and reserve_ids only for signed requests."""
    bravo = alpha_with_history["b"]
    sha = "a" * 64

    def attempt(sql: str, params: list) -> str:
        with (
            pytest.raises(DatabaseError) as error,
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
        return str(error.value)

    count = AuditEvent.objects.count()
    call = "SELECT ameide_private.import_audit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    genuine = imported_event_params(
        pk=1, at="2026-01-01T00:00:00+00:00", action="unscoped", actor="root", acting_as="",
        tenant=bravo, reason="planted", request_id="", details={}, archive_sha256=sha,
    )  # fmt: skip
    assert "not signed" in attempt(call, [*genuine[:-1], "0" * 64])
    # Signed by the application, but for a tenant that exists already: refused.
    assert "created by the import" in attempt(call, genuine)
    # The platform (no tenant), signed: refused.
    fields = [1, genuine[1], "x", "root", "", None, "", "", "{}", sha]
    assert "created by the import" in attempt(
        call, [*fields, signed_fields("import_audit", *fields)]
    )
    # Moving a sequence to its end to exhaust it: refused unsigned.
    reserve = "SELECT * FROM ameide_private.reserve_ids(%s, %s, %s, %s)"
    assert "not signed" in attempt(reserve, ["workflows_workflow", "id", 2**62, "0" * 64])
    assert AuditEvent.objects.count() == count


def test_ids_past_half_the_range_are_renumbered(crafted):
    huge = 2**62 + 5

    def far(row):
        row["id"] = huge + row["id"]

    _resign(crafted, "tables/accounts.membership.jsonl", _edit_rows(far))
    imported = import_(crafted, "--slug", "far")
    moved = imported["ids"]["accounts.membership"]["renumbered"]
    assert len(moved) == 2 and all(new < 2**62 for new in moved.values())
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM accounts_membership_id_seq")
        assert cursor.fetchone()[0] < 2**62


def test_the_text_output_names_each_renumbered_id(crafted, alpha_with_history):
    """Beside the original, every id of the copy is taken: each change is printed."""
    workflows = ids_of(alpha_with_history["a"])["workflows"]
    out, _ = tenants("import", str(crafted), "--slug", "alpha-copy")
    copy = Tenant.objects.get(slug="alpha-copy")
    assert "workflows.workflow: 3 id(s) renumbered (archive -> here):" in out
    new = ids_of(copy)["workflows"]
    for old, fresh in zip(workflows, new, strict=True):
        assert f"    {old} -> {fresh}\n" in out
    assert "tenants.tenant: 1 id(s) renumbered (archive -> here):\n    " in out
    assert "audit events (history)" in out
