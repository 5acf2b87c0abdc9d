"""Dedicated databases beyond the matrices: configuration, the request's transaction there, keys
to global rows, unscoped(), an unknown database, migrate and `tenants check` (issue 12)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import environ
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.http import HttpResponse

from accounts.models import User
from ameide.database import dedicated_database_settings, parse_named_urls
from tenants.context import tenant_context, unscoped
from tenants.exceptions import (
    CrossDatabaseKeyInvalid,
    PlacementUnavailable,
    UnscopedAcrossPlacements,
)
from tenants.placement import databases
from tenants.placement.router import respond_in_placement
from tests import dedicated
from tests.conftest import make_member
from tests.rls.support import ROOT, child_environment
from workflows import services
from workflows.models import Workflow

pytestmark = dedicated.NEEDED
FAR = f"placed_{dedicated.FAR}"
NEAR = f"placed_{dedicated.NEAR}"


@pytest.fixture
def far_tenant(db):
    return dedicated.make_tenant(slug="faraway", placement=dedicated.FAR)


# --- configuration ----------------------------------------------------------------------------


def test_named_urls_parse_and_bad_ones_are_refused():
    value = "eu=postgres://a@h1/x; us_2=postgres://b:p%3Bw@h2:5433/y;"
    assert parse_named_urls(value, variable="V") == {
        "eu": "postgres://a@h1/x",
        "us_2": "postgres://b:p%3Bw@h2:5433/y",
    }
    for bad in ("eu", "EU=postgres://h/x", "eu=", "e-u=postgres://h/x", "eu=x;eu=y"):
        with pytest.raises(ImproperlyConfigured):
            parse_named_urls(bad, variable="V")


def test_the_runtime_alias_logs_in_as_the_runtime_role(monkeypatch):
    like = {**connections.settings["default"], "USER": "ameide_app", "PASSWORD": "pw"}
    monkeypatch.setenv("AMEIDE_DATABASES", "eu=postgres://owner:secret@db-eu:5432/ameide_eu")
    monkeypatch.delenv("AMEIDE_DATABASES_OWNER", raising=False)
    development = dedicated_database_settings(environ.Env(), like=like)["placed_eu"]
    assert (development["USER"], development["PASSWORD"]) == ("ameide_app", "pw")
    assert development["PLACEMENT"] == "eu" and development["ATOMIC_REQUESTS"] is False
    # Production: AMEIDE_DATABASES is the runtime role's address, the owner's is elsewhere.
    monkeypatch.setenv("AMEIDE_DATABASES", "eu=postgres://app_eu:rt@db-eu:5432/ameide_eu")
    monkeypatch.setenv("AMEIDE_DATABASES_OWNER", "eu=postgres://owner:secret@db-eu:5432/ameide_eu")
    production = dedicated_database_settings(environ.Env(), like=like)["placed_eu"]
    assert (production["USER"], production["PASSWORD"]) == ("app_eu", "rt")
    assert "secret" not in repr(production)


# --- routing and the request's transaction ----------------------------------------------------


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_a_database_the_process_does_not_know_is_refused_not_replaced_by_shared(db):
    lost = dedicated.make_tenant(slug="lost", placement="nowhere")
    with tenant_context(lost), pytest.raises(PlacementUnavailable, match="nowhere"):
        Workflow.objects.count()


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_a_request_of_a_tenant_in_an_unknown_database_answers_503(db):
    from rest_framework.test import APIClient

    lost = dedicated.make_tenant(slug="lost", placement="nowhere")
    client = APIClient()
    client.force_login(make_member(tenant=lost, username="lost-user"))
    response = client.get("/api/workflows/")
    assert response.status_code == 503 and response.json()["code"] == "unavailable"


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_a_request_whose_dedicated_transaction_cannot_begin_answers_503(far_tenant, monkeypatch):
    from django.db import OperationalError
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(make_member(tenant=far_tenant, username="farah"))

    def server_gone(*args, **kwargs):
        raise OperationalError("the server closed the connection")

    # The request's transaction there is a savepoint inside the test's own transaction.
    monkeypatch.setattr(connections[FAR], "savepoint", server_gone)
    response = client.post("/api/workflows/", {"name": "never"}, format="json")
    assert response.status_code == 503 and response.json()["code"] == "unavailable"
    monkeypatch.undo()
    with tenant_context(far_tenant):
        assert not Workflow.objects.exists()


@pytest.mark.django_db(databases=dedicated.DATABASES)
@pytest.mark.parametrize("status,kept", [(200, True), (201, True), (400, False), (500, False)])
def test_the_request_transaction_commits_a_dedicated_databases_work_only_on_success(
    far_tenant, status, kept
):
    def view() -> HttpResponse:
        Workflow.objects.create(name="written in the request")
        assert connections[FAR].in_atomic_block  # the request's transaction there
        return HttpResponse(status=status)

    with tenant_context(far_tenant):
        assert respond_in_placement(far_tenant, view).status_code == status
        assert Workflow.objects.filter(name="written in the request").exists() is kept


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_an_api_request_of_a_far_tenant_writes_there_and_nothing_to_default(far_tenant):
    from rest_framework.test import APIClient

    user = make_member(tenant=far_tenant, username="farah")
    client = APIClient()
    client.force_login(user)
    created = client.post("/api/workflows/", {"name": "over there"}, format="json")
    assert created.status_code == 201, created.content
    listed = client.get("/api/workflows/").json()["results"]
    assert [(w["name"], w["owner"]) for w in listed] == [("over there", "farah")]
    with tenant_context(far_tenant):
        assert Workflow.objects.get(name="over there")._state.db == FAR
        assert not Workflow.objects.using(DEFAULT_DB_ALIAS).exists()
    assert client.post("/api/workflows/", {"name": "over there"}, format="json").status_code == 409
    assert len(client.get("/api/workflows/").json()["results"]) == 1


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_unscoped_refuses_placed_rows_while_a_tenant_is_in_a_dedicated_database(far_tenant):
    with unscoped(reason="test: everything"), pytest.raises(UnscopedAcrossPlacements):
        Workflow.objects.count()


# --- keys to global rows ------------------------------------------------------------------------


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_a_key_to_a_missing_user_is_refused_on_write(far_tenant):
    user = make_member(tenant=far_tenant, username="present")
    with tenant_context(far_tenant):
        Workflow.objects.create(name="owned", owner=user)
        with pytest.raises(CrossDatabaseKeyInvalid, match="owner"):
            Workflow.objects.create(name="orphan", owner_id=user.pk + 10_000)
        assert set(Workflow.objects.values_list("name", flat=True)) == {"owned"}


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_deleting_a_user_applies_on_delete_in_dedicated_databases(far_tenant):
    user = User.objects.create_user(username="leaving", password="pw")
    with tenant_context(far_tenant):
        services.workflow_create(name="theirs", owner=user)
    # The pre_delete receiver itself: `user.delete()` fails closed earlier today (Django's
    # collector reaches memberships in the shared tables without a tenant).
    databases.apply_on_delete(User, instance=user, using=DEFAULT_DB_ALIAS)
    with tenant_context(far_tenant):
        assert Workflow.objects.get(name="theirs").owner_id is None


# --- tenants check and migrate -------------------------------------------------------------------


@pytest.mark.django_db(databases=dedicated.COMMITTED_DATABASES)
def test_tenants_check_is_clean_for_placed_tenants_and_names_their_problems(far_tenant):
    failures, _ = databases.findings(using_owner=True)
    assert failures == []
    # A row left in the shared tables (written by break-glass: the tenant's own writes there
    # are refused, docs/placement.md), and a key to a user that is gone.
    with unscoped(reason="test: a row left behind"), connections[DEFAULT_DB_ALIAS].cursor() as c:
        c.execute(
            "INSERT INTO workflows_workflow (tenant_id, name, description, definition, status, "
            "created_at, updated_at) VALUES (%s, 'stray', '', '{}', 'draft', now(), now())",
            [far_tenant.pk],
        )
    with tenant_context(far_tenant):
        Workflow.objects.update(owner_id=None)
        with connections[FAR].cursor() as cursor:
            cursor.execute(
                "INSERT INTO workflows_workflow (tenant_id, name, description, definition, "
                "status, owner_id, created_at, updated_at) VALUES (%s, 'dangling', '', '{}', "
                "'draft', 987654321, now(), now())",
                [far_tenant.pk],
            )
    dedicated.make_tenant(slug="lost", placement="nowhere")
    with connections[f"{FAR}_owner"].cursor() as cursor:  # rolled back with the test
        cursor.execute("ALTER TABLE workflows_workflowrun NO FORCE ROW LEVEL SECURITY")
    failures, _ = databases.findings(using_owner=True)
    assert (
        "dedicated database far: workflows_workflowrun row level security is not enabled, "
        "forced and isolating (run migrate)"
    ) in failures, failures
    assert any("has rows in the shared workflows_workflow" in f for f in failures), failures
    assert any("rows that do not exist: [987654321]" in f for f in failures), failures
    assert any("'nowhere', which AMEIDE_DATABASES does not name" in f for f in failures), failures


@pytest.mark.django_db(databases=dedicated.DATABASES)
def test_tenants_check_reports_an_unreachable_dedicated_database():
    """A runtime process (no owner's address) whose AMEIDE_DATABASES names a server that is
    not there: `tenants check` fails and says which."""
    gone = "gone=postgres://postgres@127.0.0.1:18599/nothing"
    env = child_environment(AMEIDE_DATABASES=f"{os.environ['AMEIDE_DATABASES']};{gone}")
    env.update(DB_CONNECT_TIMEOUT="2")
    result = subprocess.run(
        [sys.executable, "manage.py", "tenants", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "FAIL dedicated database gone is unreachable" in result.stderr, result.stderr
    for reachable in ("far", "near"):
        assert f"FAIL dedicated database {reachable}" not in result.stderr, result.stderr


@pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)
def test_a_lagging_dedicated_database_is_reported_and_migrate_finishes_it():
    owner = databases.register_owner_alias(dedicated.NEAR)
    assert databases.lag_of(owner) == []
    # The accounts app's last migration, forgotten by the dedicated database.
    (last,) = [name for app, name in MigrationLoader(None).graph.leaf_nodes() if app == "accounts"]
    with connections[owner].cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'accounts' AND name = %s", [last])
    failures, _ = databases.findings(using_owner=True)
    assert any(f.startswith("dedicated database near lags: 1 migration(s)") for f in failures), (
        failures
    )
    out = io.StringIO()
    call_command("migrate", stdout=out, verbosity=1)
    assert "Dedicated database far (1/2):" in out.getvalue()
    assert "Dedicated database near (2/2):" in out.getvalue()
    assert re.search(rf"Applying accounts\.{last}\.\.\.\s*OK", out.getvalue())
    assert databases.lag_of(owner) == []
    # Run again: nothing left to do anywhere.
    again = io.StringIO()
    call_command("migrate", stdout=again, verbosity=1)
    assert again.getvalue().count("No migrations to apply.") == 3


@pytest.mark.django_db(databases=dedicated.COMMITTED_DATABASES)
@pytest.mark.parametrize("alias", [NEAR, FAR])
def test_a_dedicated_database_holds_the_placed_tables_only_with_the_wall(alias):
    with connections[f"{alias}_owner"].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY 1"
        )
        tables = {name: (rls, forced) for name, rls, forced in cursor.fetchall()}
        cursor.execute("SELECT count(*) FROM ameide_private.scope_key")
        keys = cursor.fetchone()[0]
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = 'workflows_workflowrun'::regclass"
        )
        keys_of_runs = {row[0] for row in cursor.fetchall()}
    assert set(tables) == {"django_migrations", "workflows_workflow", "workflows_workflowrun"}
    assert tables["workflows_workflow"] == tables["workflows_workflowrun"] == (True, True)
    assert keys == 1
    # Composite keys between tenant tables stay; none points at a global table.
    assert keys_of_runs and all(name.endswith("_tfk") for name in keys_of_runs), keys_of_runs
