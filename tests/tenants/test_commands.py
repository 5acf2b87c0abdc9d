"""`manage.py tenants`: every subcommand's happy path, its bad inputs (non-zero exit, nothing
written), and the audit rows lifecycle commands leave."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction

from accounts.models import User
from tenants.models import AuditEvent, Tenant
from tests import dedicated
from tests.tenants.cli_support import (
    Terminal,
    content,
    database_state,
    last_event,
    refused,
    tenants,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

SUBCOMMANDS = [
    "create", "list", "show", "suspend", "activate", "delete", "purge",
    "export", "import", "usage", "check", "setup", "exec", "users", "members", "distribute",
]  # fmt: skip


# --- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        call_command("tenants", sub, "--help")
    assert exc.value.code == 0
    assert f"tenants {sub}" in capsys.readouterr().out


def test_usage_help_says_how_size_is_computed(capsys):
    with pytest.raises(SystemExit):
        call_command("tenants", "usage", "--help")
    assert "pg_column_size" in capsys.readouterr().out


# --- create, list, show -------------------------------------------------------------------


def test_create_list_show_with_json():
    out, _ = tenants("create", "acme", "--name", "Acme", "--json")
    created = json.loads(out)
    assert created["slug"] == "acme" and created["external_id"] == "acme"
    assert last_event("tenant.create").actor.startswith("cli:create")
    listed = json.loads(tenants("list", "--json")[0])
    assert [t["slug"] for t in listed] == ["acme"]
    shown = json.loads(tenants("show", "acme", "--json")[0])
    assert shown == created and shown["statement_label"].startswith("t=")
    assert "acme" in tenants("list")[0]


def test_list_has_a_header_row():
    assert tenants("list")[0].strip() == "(no tenants)"
    tenants("create", "acme", "--name", "Acme Corporation")
    tenants("create", "globex", "--name", "Globex")
    lines = tenants("list")[0].splitlines()
    assert lines[0].split() == ["slug", "status", "placement", "name"]
    assert [line.split(maxsplit=3) for line in lines[1:]] == [
        ["acme", "active", "shared", "Acme Corporation"],
        ["globex", "active", "shared", "Globex"],
    ]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("create", "Bad_Slug", "--name", "X"), "Invalid slug"),
        (("create", "alpha", "--name", "Dup"), "already exists"),
        (("create", "new", "--name", "X", "--external-id", "alpha"), "already exists"),
        (("create", "new", "--name", "  "), "non-empty"),
        (("show", "nosuch"), "No tenant"),
    ],
)
def test_create_and_show_refuse_bad_input_and_write_nothing(tenant_a, args, match):
    before = database_state()
    refused(*args, match=match)
    assert database_state() == before


# --- suspend, activate, delete ------------------------------------------------------------


def test_delete_is_soft_and_activate_undoes_it(populated, client):
    ann = User.objects.get(username="ann")
    client.force_login(ann)
    assert client.get("/api/workflows/").status_code == 200
    before = content(populated["a"])

    tenants("delete", "alpha", "--reason", "customer left")
    assert Tenant.objects.get(slug="alpha").status == "deleted"
    event = last_event("tenant.deleted")
    assert event.reason == "customer left" and event.actor.startswith("cli:delete")
    assert event.tenant_slug == "alpha"
    assert client.get("/api/workflows/").status_code == 403
    assert content(populated["a"]) == before  # the data is intact

    tenants("activate", "alpha")
    assert client.get("/api/workflows/").status_code == 200


def test_suspend_then_activate(tenant_a):
    tenants("suspend", "alpha")
    assert Tenant.objects.get(slug="alpha").status == "suspended"
    assert last_event("tenant.suspended").details == {"from": "active", "to": "suspended"}
    tenants("activate", "alpha")
    assert Tenant.objects.get(slug="alpha").status == "active"


@pytest.mark.parametrize(
    ("command", "status"),
    [("suspend", "suspended"), ("delete", "deleted"), ("activate", "active")],
)
def test_status_changes_print_the_tenant_as_json(tenant_a, command, status):
    if command == "activate":
        Tenant.objects.filter(pk=tenant_a.pk).update(status="suspended")
    shown = json.loads(tenants(command, "alpha", "--reason", "r", "--json")[0])
    assert shown["slug"] == "alpha" and shown["status"] == status
    assert shown == json.loads(tenants("show", "alpha", "--json")[0])


@pytest.mark.parametrize(
    ("status", "args", "match"),
    [
        ("suspended", ("suspend", "alpha"), "is suspended"),
        ("deleted", ("suspend", "alpha"), "is deleted"),
        ("active", ("activate", "alpha"), "is active"),
        ("deleted", ("delete", "alpha"), "is deleted"),
        ("active", ("delete", "nosuch"), "No tenant"),
        ("active", ("suspend", "nosuch"), "No tenant"),
    ],
)
def test_status_changes_refuse_the_wrong_state_and_write_nothing(tenant_a, status, args, match):
    Tenant.objects.filter(pk=tenant_a.pk).update(status=status)
    before = database_state()
    refused(*args, match=match)
    assert database_state() == before


# --- check ---------------------------------------------------------------------------------


def _check_json() -> dict:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("tenants", "check", "--json", stdout=out, stderr=io.StringIO())
    assert exc.value.code == 1
    return json.loads(out.getvalue())


# The check reaches every alias of the process, the dedicated databases' too (tests/dedicated.py).
@pytest.mark.django_db(databases=dedicated.COMMITTED_DATABASES)
def test_check_prints_its_findings_as_json():
    # This test process holds the owner's alias (it builds the test database), and the check
    # says so: a runtime process never has it (tests/rls/test_rls_tenants_check.py).
    owner = connections["owner"].settings_dict["USER"]
    reach = f"this process's alias 'owner' logs in as {owner}, which SUPERUSER"
    before = _check_json()
    assert before["clean"] is False and reach in before["findings"]
    assert not any("workflows_workflow" in finding for finding in before["findings"])
    # A weakening made as the owner in this test's transaction (rolled back with it).
    with connections["owner"].cursor() as cursor:
        cursor.execute("ALTER TABLE workflows_workflow NO FORCE ROW LEVEL SECURITY")
    after = _check_json()
    assert after["findings"] == [
        "workflows_workflow: row level security is not FORCEd",
        *before["findings"],
    ]


# --- purge --------------------------------------------------------------------------------


def test_purge_deletes_every_row_of_the_tenant_and_leaves_a_record(populated):
    bravo_before = content(populated["b"])
    tenants("delete", "alpha")
    out, err = tenants("purge", "alpha", "--yes", "--json")
    summary = json.loads(out)
    assert summary["tables"] == {
        "accounts.membership": 2,
        "workflows.workflow": 3,
        "workflows.workflowrun": 3,
    }
    assert err == ""  # no progress bar when not on a terminal
    assert not Tenant.objects.filter(slug="alpha").exists()
    assert content(populated["b"]) == bravo_before
    assert User.objects.get(username="ann").home_tenant_id is None  # users are global: kept

    record = AuditEvent.objects.get(pk=summary["audit_event_id"])
    assert record.action == "tenant.purge" and record.tenant_slug == "alpha"
    assert record.tenant_id_value == populated["a"].pk
    assert record.details["tables"] == summary["tables"] and record.details["rows"] == 8
    assert record.actor.startswith("cli:purge")
    # The record is append-only: the runtime role can neither change nor remove it.
    for statement in (
        "UPDATE tenants_auditevent SET reason = 'x' WHERE id = %s",
        "DELETE FROM tenants_auditevent WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [record.pk])


def test_purge_asks_for_the_slug_on_a_terminal(populated, monkeypatch):
    tenants("delete", "alpha")
    monkeypatch.setattr("sys.stdin", Terminal("alpha\n"))
    tenants("purge", "alpha")
    assert not Tenant.objects.filter(slug="alpha").exists()


def test_purge_with_a_wrong_answer_writes_nothing(populated, monkeypatch):
    tenants("delete", "alpha")
    before = database_state()
    monkeypatch.setattr("sys.stdin", Terminal("bravo\n"))
    refused("purge", "alpha", match="did not match")
    assert database_state() == before


def test_purge_without_yes_and_without_a_terminal_refuses(populated, monkeypatch):
    tenants("delete", "alpha")
    before = database_state()
    monkeypatch.setattr("sys.stdin", io.StringIO("alpha\n"))
    refused("purge", "alpha", match="--yes")
    assert database_state() == before


@pytest.mark.parametrize("status", ["active", "suspended"])
def test_purge_needs_a_soft_deleted_tenant(populated, status):
    Tenant.objects.filter(slug="alpha").update(status=status)
    before = database_state()
    refused("purge", "alpha", "--yes", match="soft-delete it first")
    assert database_state() == before


def test_purge_of_an_unknown_tenant_is_refused(db):
    refused("purge", "nosuch", "--yes", match="No tenant")


# --- usage --------------------------------------------------------------------------------


def test_usage_counts_rows_and_bytes_per_tenant(populated):
    audit_before = AuditEvent.objects.count()
    usage = {u["slug"]: u for u in json.loads(tenants("usage", "--json")[0])}
    assert usage["alpha"]["tables"]["workflows.workflow"]["rows"] == 3
    assert usage["alpha"]["tables"]["workflows.workflowrun"]["rows"] == 3
    assert usage["alpha"]["tables"]["accounts.membership"]["rows"] == 2
    assert usage["alpha"]["rows"] == 8
    assert usage["bravo"]["rows"] == 2
    assert usage["alpha"]["bytes"] > usage["bravo"]["bytes"] > 0
    # Reading every tenant is a cross-tenant act: audited.
    assert AuditEvent.objects.count() == audit_before + 1
    assert last_event("unscoped").reason.startswith("tenants usage")

    only = json.loads(tenants("usage", "bravo", "--json")[0])
    assert [u["slug"] for u in only] == ["bravo"]
    assert only[0]["tables"] == usage["bravo"]["tables"]
    text = tenants("usage")[0]
    assert "alpha" in text and "workflows.workflowrun" in text


def test_usage_of_an_unknown_tenant_is_refused(db):
    refused("usage", "nosuch", match="No tenant")


# --- exec and failing closed --------------------------------------------------------------


def test_exec_runs_a_command_inside_the_tenant(populated):
    out, _ = tenants("exec", "alpha", "--", "dumpdata", "workflows.workflow")
    names = {row["fields"]["name"] for row in json.loads(out)}
    assert names == {"Onboard ✓", "Nightly", "Orphan"}
    event = last_event("tenant.exec")
    assert event.tenant_slug == "alpha"
    assert event.details == {"argv": ["dumpdata", "workflows.workflow"]}


def test_exec_dumpdata_without_labels_dumps_only_the_tenants_rows(populated):
    """THREATS 38: no users, password hashes, sessions, providers or audit rows, and none of
    another tenant's rows."""
    out, _ = tenants("exec", "alpha", "--", "dumpdata")
    dumped = json.loads(out)
    models = {row["model"] for row in dumped}
    assert models <= {"accounts.membership", "workflows.workflow", "workflows.workflowrun"}
    assert {row["fields"]["tenant"] for row in dumped} == {populated["a"].pk}
    assert "pbkdf2" not in out and "password" not in out


def test_a_tenant_data_command_without_a_tenant_fails_closed(populated):
    with pytest.raises(CommandError, match="No tenant is set"):
        call_command("dumpdata", "workflows.workflow", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("status", "argv", "match"),
    [
        ("suspended", ["dumpdata", "workflows"], "is suspended"),
        ("deleted", ["dumpdata", "workflows"], "is deleted"),
        ("active", ["nosuchcommand"], "Unknown command"),
        ("active", ["flush", "--no-input"], "whole database"),
        ("active", ["tenants", "list"], "whole database"),
        ("active", [], "Name the command"),
        ("active", ["dumpdata", "accounts.user"], "tenant models only"),
        ("active", ["dumpdata", "sessions"], "no tenant models"),
        ("active", ["dumpdata", "--database", "owner"], "own database"),
        ("active", ["shell", "-c", "print(1)"], "not declared safe"),
    ],
)
def test_exec_refuses_and_writes_nothing(populated, status, argv, match):
    Tenant.objects.filter(slug="alpha").update(status=status)
    before = database_state()
    refused("exec", "alpha", "--", *argv, match=match)
    assert database_state() == before


def test_exec_in_an_unknown_tenant_is_refused(db):
    refused("exec", "nosuch", "--", "dumpdata", match="No tenant")


def test_manage_py_reports_a_missing_tenant_as_a_command_error():
    """The real command line: exit status 1 and one plain line, not a traceback."""
    code = "from workflows.models import Workflow; Workflow.objects.count()"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "CommandError: TenantNotSet: No tenant is set" in result.stderr
    assert "Traceback" not in result.stderr
