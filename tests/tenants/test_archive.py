"""`tenants export` and `tenants import`: the archive, the lossless round trip, ids kept or
renumbered, and tampered or unusable archives refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime, timedelta, timezone

import pytest

from accounts.models import User
from tenants.context import tenant_context, unscoped
from tenants.lifecycle.archive import manifest_digest
from tenants.lifecycle.tables import canonical_line
from tenants.models import AuditEvent, Tenant
from tests.tenants.cli_support import (
    Terminal,
    content,
    database_state,
    last_event,
    refused,
    tenants,
)
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db


def export(slug: str, path) -> dict:
    return json.loads(tenants("export", slug, "--output", str(path), "--json")[0])


def import_(path, *args: str) -> dict:
    return json.loads(tenants("import", str(path), "--json", *args)[0])


def purge(slug: str) -> None:
    tenants("delete", slug)
    tenants("purge", slug, "--yes")


def ids(tenant: Tenant) -> dict:
    with tenant_context(tenant):
        return {
            "workflows": sorted(Workflow.objects.values_list("pk", flat=True)),
            "runs": sorted(WorkflowRun.objects.values_list("pk", "workflow_id")),
        }


def rewrite(path, *, member: str, edit, resign: bool = False) -> None:
    """Rewrite one member of the archive; `resign` also fixes its checksum, count and the
    manifest digest (what a careful forger would do)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    lines = members[member].decode().splitlines()
    lines = edit(lines)
    members[member] = "".join(line + "\n" for line in lines).encode()
    if resign:
        manifest = json.loads(members["manifest.json"])
        entries = [*manifest["tables"], manifest["users"]]
        entry = next(e for e in entries if e["file"] == member)
        digest = hashlib.sha256(members[member]).hexdigest()
        entry.update(rows=len(lines), sha256=digest)
        manifest["digest"] = manifest_digest(manifest)
        members["manifest.json"] = json.dumps(manifest).encode()
    path.unlink()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


# --- export -------------------------------------------------------------------------------


def test_export_writes_a_manifest_with_counts_and_checksums(populated, tmp_path):
    path = tmp_path / "alpha.zip"
    summary = export("alpha", path)
    assert summary["tables"]["workflows.workflow"]["rows"] == 3
    assert summary["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["format"] == "ameide.tenant-archive" and manifest["version"] == 2
        assert manifest["source"]["slug"] == "alpha"
        assert manifest["source"]["external_id"] == "alpha"
        # Dependency order: a workflow before its runs.
        models = [t["model"] for t in manifest["tables"]]
        assert models.index("workflows.workflow") < models.index("workflows.workflowrun")
        for entry in manifest["tables"]:
            data = archive.read(entry["file"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            rows = [json.loads(line) for line in data.decode().splitlines()]
            assert len(rows) == entry["rows"]
            assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
            assert all("tenant_id" not in r for r in rows)
        workflows = [
            json.loads(line)
            for line in archive.read("tables/workflows.workflow.jsonl").decode().splitlines()
        ]
        owners = {w["name"]: w["owner_id"] for w in workflows}
        # Users are written portably: by issuer and subject, or by username.
        assert owners["Nightly"] == {
            "issuer": "https://idp.example/realms/alpha",
            "subject": "sub-olga",
            "username": "olga",
        }
        assert owners["Onboard ✓"] == {"issuer": "", "subject": "", "username": "ann"}
        assert owners["Orphan"] is None
        users = [json.loads(line) for line in archive.read("users.jsonl").decode().splitlines()]
        assert {u["username"] for u in users} == {"ann", "olga"}  # not bob (tenant bravo)
        assert b"Bravo only" not in b"".join(archive.read(n) for n in archive.namelist())
    event = last_event("tenant.export")
    assert event.tenant_slug == "alpha" and event.details["sha256"] == summary["sha256"]
    assert event.actor.startswith("cli:export")


def test_export_of_a_suspended_tenant_is_allowed(populated, tmp_path):
    tenants("suspend", "alpha")
    assert export("alpha", tmp_path / "a.zip")["tables"]["workflows.workflowrun"]["rows"] == 3


@pytest.mark.parametrize(
    ("slug", "name", "match"),
    [
        ("nosuch", "new.zip", "No tenant"),
        ("alpha", "exists.zip", "already exists"),
        ("alpha", "missing-dir/new.zip", "does not exist"),
    ],
)
def test_export_refuses_bad_input_and_writes_nothing(populated, tmp_path, slug, name, match):
    (tmp_path / "exists.zip").write_text("keep me")
    before = database_state()
    refused("export", slug, "--output", str(tmp_path / name), match=match)
    assert database_state() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.zip"]
    assert (tmp_path / "exists.zip").read_text() == "keep me"


def test_progress_bar_only_on_a_terminal(populated, tmp_path):
    _, quiet = tenants("export", "alpha", "--output", str(tmp_path / "a.zip"))
    assert quiet == ""
    err = Terminal()
    tenants("export", "alpha", "--output", str(tmp_path / "b.zip"), stdout=Terminal(), stderr=err)
    assert "export workflows.workflowrun" in err.getvalue()


# --- round trip -----------------------------------------------------------------------------


def test_export_purge_import_round_trip_is_lossless(populated, tmp_path):
    path = tmp_path / "alpha.zip"
    before, ids_before = content(populated["a"]), ids(populated["a"])
    exported = export("alpha", path)
    purge("alpha")
    assert not Tenant.objects.filter(slug="alpha").exists()

    imported = import_(path)
    alpha = Tenant.objects.get(slug="alpha")
    assert alpha.pk != populated["a"].pk and alpha.external_id == "alpha"
    for label, table in exported["tables"].items():
        assert imported["tables"][label]["sha256"] == table["sha256"], label
        assert imported["tables"][label]["rows"] == table["rows"], label
        assert imported["tables"][label]["ids"] == "kept", label  # freed by the purge
    assert content(alpha) == before  # created_at, JSON, owners, unicode, all of it
    assert ids(alpha) == ids_before
    assert imported["users_created"] == 0
    # The purge cleared ann's home tenant; an import never changes an existing global row.
    assert User.objects.get(username="ann").home_tenant is None

    # A second export of the imported tenant has the very same checksums.
    again = export("alpha", tmp_path / "again.zip")
    assert {k: v["sha256"] for k, v in again["tables"].items()} == {
        k: v["sha256"] for k, v in exported["tables"].items()
    }
    event = last_event("tenant.import")
    assert event.tenant_slug == "alpha" and event.actor.startswith("cli:import")
    assert event.details["sha256"] == exported["sha256"]


def test_import_under_a_new_slug_remaps_ids_and_keys(populated, tmp_path):
    path = tmp_path / "alpha.zip"
    exported = export("alpha", path)
    before = content(populated["a"])
    alpha_ids = ids(populated["a"])

    imported = import_(path, "--slug", "alpha-copy", "--name", "Alpha copy")
    copy = Tenant.objects.get(slug="alpha-copy")
    assert copy.external_id == "alpha-copy" and copy.name == "Alpha copy"
    assert all(t["ids"] == "renumbered" for t in imported["tables"].values())
    assert {k: v["sha256"] for k, v in imported["tables"].items()} == {
        k: v["sha256"] for k, v in exported["tables"].items()
    }
    assert content(copy) == before  # runs point at the copies of their workflows
    copy_ids = ids(copy)
    assert not set(copy_ids["workflows"]) & set(alpha_ids["workflows"])
    assert content(populated["a"]) == before and ids(populated["a"]) == alpha_ids


def test_import_into_an_empty_database_creates_missing_users(populated, tmp_path):
    """Another database: the users and ids of the archive do not exist there."""
    path = tmp_path / "alpha.zip"
    exported = export("alpha", path)
    purge("alpha")
    with unscoped(reason="test: the users never existed in this database"):
        User.objects.filter(username__in=["ann", "olga"]).delete()

    imported = import_(path)
    assert imported["users_created"] == 2
    olga = User.objects.get(issuer="https://idp.example/realms/alpha", subject="sub-olga")
    assert not olga.has_usable_password() and not olga.is_staff and not olga.is_superuser
    # Her first sign-in decides her tenant, not the archive (issue 9.5).
    assert olga.awaiting_first_sign_in is True
    assert User.objects.get(username="ann").home_tenant.slug == "alpha"
    assert (
        imported["tables"]["workflows.workflow"]["sha256"]
        == (exported["tables"]["workflows.workflow"]["sha256"])
    )


# --- refused imports ----------------------------------------------------------------------


@pytest.fixture
def archive(populated, tmp_path):
    """An archive of alpha, and alpha purged: a valid import would recreate it."""
    path = tmp_path / "alpha.zip"
    export("alpha", path)
    purge("alpha")
    return path


def _change_a_name(lines):
    row = json.loads(lines[0])
    row["name"] = "Tampered"
    return [canonical_line(row), *lines[1:]]


def _shift_a_timestamp(lines):
    # The same instant spelt in another time zone: it passes every check of the archive and
    # reads back differently (in UTC), so only the check after the insert can catch it.
    row = json.loads(lines[0])
    moment = datetime.fromisoformat(row["created_at"]).astimezone(timezone(timedelta(hours=2)))
    row["created_at"] = moment.isoformat()
    return [canonical_line(row), *lines[1:]]


@pytest.mark.parametrize(
    ("member", "edit", "resign", "match"),
    [
        ("tables/workflows.workflow.jsonl", _change_a_name, False, "checksum mismatch"),
        ("tables/workflows.workflow.jsonl", lambda lines: lines[1:], False, "rows in the file"),
        ("tables/workflows.workflowrun.jsonl", lambda lines: lines[:-1], False, "rows in the"),
        ("users.jsonl", lambda lines: lines[1:], False, "users.jsonl"),
        ("tables/workflows.workflow.jsonl", lambda lines: [lines[0]], True, "missing from the"),
        ("tables/workflows.workflow.jsonl", _shift_a_timestamp, True, "rolled back"),
        ("tables/workflows.workflow.jsonl", lambda ls: [ls[0] + " ", *ls[1:]], True, "canonical"),
    ],
    ids=[
        "changed row", "removed row", "removed child row", "removed user",
        "re-signed dangling key", "re-signed value that reads back differently",
        "re-signed non-canonical line",
    ],
)  # fmt: skip
def test_a_tampered_archive_changes_nothing(archive, member, edit, resign, match):
    rewrite(archive, member=member, edit=edit, resign=resign)
    before = database_state()
    refused("import", str(archive), match=match)
    assert database_state() == before
    assert not Tenant.objects.filter(slug="alpha").exists()


def test_a_changed_manifest_changes_nothing(archive):
    with zipfile.ZipFile(archive) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    manifest = json.loads(members["manifest.json"])
    manifest["tables"][0]["rows"] += 1
    members["manifest.json"] = json.dumps(manifest).encode()
    archive.unlink()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    before = database_state()
    refused("import", str(archive), match="manifest.json was changed")
    assert database_state() == before


def test_an_archive_with_another_sha256_is_refused(archive):
    before = database_state()
    refused("import", str(archive), "--sha256", "0" * 64, match="not the expected")
    assert database_state() == before
    good = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert import_(archive, "--sha256", good)["tenant"] == "alpha"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--slug", "bravo"), "slug 'bravo' exists"),
        (("--slug", "other", "--external-id", "bravo"), "external id 'bravo' exists"),
        (("--slug", "Not A Slug"), "Invalid slug"),
    ],
)
def test_import_refuses_a_taken_or_invalid_identifier(archive, args, match):
    before = database_state()
    refused("import", str(archive), *args, match=match)
    assert database_state() == before


def test_import_refuses_a_tenant_that_still_exists(populated, tmp_path):
    path = tmp_path / "alpha.zip"
    export("alpha", path)
    tenants("delete", "alpha")  # soft-deleted is still there: never overwritten
    before = database_state()
    refused("import", str(path), match="slug 'alpha' exists")
    assert database_state() == before


@pytest.mark.parametrize("kind", ["missing", "not a zip", "no manifest"])
def test_import_refuses_what_is_not_an_archive(db, tmp_path, kind):
    path = tmp_path / "x.zip"
    if kind == "not a zip":
        path.write_text("hello")
    elif kind == "no manifest":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("users.jsonl", "")
    before = database_state()
    audit = AuditEvent.objects.count()
    refused("import", str(path), match="archive")
    assert database_state() == before and AuditEvent.objects.count() == audit


@pytest.mark.django_db(transaction=True, databases=["default", "owner"])
def test_round_trip_with_real_transactions(populated, tmp_path):
    """Committed transactions: the export's REPEATABLE READ snapshot, the purge record that
    survives its commit, and the deferred composite keys checked when the import commits."""
    from django.db import connection

    path = tmp_path / "alpha.zip"
    before = content(populated["a"])
    exported = export("alpha", path)
    assert connection.connection.isolation_level is None  # the driver's default is restored
    purge("alpha")
    record = last_event("tenant.purge")
    assert record.details["rows"] == 8
    imported = import_(path)
    assert {k: v["sha256"] for k, v in imported["tables"].items()} == {
        k: v["sha256"] for k, v in exported["tables"].items()
    }
    assert content(Tenant.objects.get(slug="alpha")) == before
    assert AuditEvent.objects.filter(pk=record.pk).exists()
