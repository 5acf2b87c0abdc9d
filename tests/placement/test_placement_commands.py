"""`tenants create --placement schema` provisions the schema; list, show and --json say where
each tenant lives, and list filters by placement; the admin shows it and never edits it."""

from __future__ import annotations

import json

import pytest

from tenants.context import tenant_context
from tenants.models import Tenant
from tests.rls.support import owner_execute
from tests.tenants.cli_support import refused, tenants
from workflows.models import Workflow

# Committed: provisioning a schema runs on a connection of its own, outside the test's
# transaction (whose tenant row it would wait for).
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


@pytest.fixture
def drop_schemas():
    made: list[str] = []
    yield made
    for schema in made:
        owner_execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_create_in_a_schema_provisions_it_and_list_and_show_say_so(drop_schemas):
    drop_schemas += ["pt_cli_named"]
    out, _ = tenants(
        "create",
        "initech",
        "--name",
        "Initech",
        "--placement",
        "schema",
        "--schema",
        "pt_cli_named",
    )
    assert out.strip() == "created tenant initech in schema pt_cli_named"
    tenants("create", "acme", "--name", "Acme")
    created = json.loads(
        tenants("create", "hooli", "--name", "Hooli", "--placement", "schema", "--json")[0]
    )
    default_name = f"tenant_{created['id']}"
    drop_schemas.append(default_name)
    assert (created["placement"], created["placement_name"]) == ("schema", default_name)
    # The schema is there, with the tenant tables, and the tenant's rows go there.
    assert owner_execute(
        "SELECT to_regclass(%s) IS NOT NULL", [f"{default_name}.workflows_workflow"]
    ) == [(True,)]
    with tenant_context(Tenant.objects.get(slug="hooli")):
        Workflow.objects.create(name="in its schema")
        assert Workflow.objects.count() == 1

    lines = tenants("list")[0].splitlines()
    assert [line.split(maxsplit=3)[:3] for line in lines[1:]] == [
        ["acme", "active", "shared"],
        ["hooli", "active", f"schema:{default_name}"],
        ["initech", "active", "schema:pt_cli_named"],
    ]
    listed = json.loads(tenants("list", "--placement", "schema", "--json")[0])
    assert [(t["slug"], t["placement"], t["placement_name"]) for t in listed] == [
        ("hooli", "schema", default_name),
        ("initech", "schema", "pt_cli_named"),
    ]
    assert [
        t["slug"] for t in json.loads(tenants("list", "--placement", "shared", "--json")[0])
    ] == ["acme"]
    assert "placement: schema" in tenants("show", "initech")[0]
    shown = json.loads(tenants("show", "initech", "--json")[0])
    assert (shown["placement"], shown["placement_name"]) == ("schema", "pt_cli_named")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--placement", "schema", "--schema", "public"), "Invalid schema name"),
        (("--placement", "schema", "--schema", "Bad-Name"), "Invalid schema name"),
        (("--placement", "schema", "--schema", "pg_toast"), "Invalid schema name"),
        (("--schema", "pt_x"), "--schema goes with --placement schema"),
    ],
)
def test_create_refuses_bad_placements(args, match):
    refused("create", "bad", "--name", "Bad", *args, match=match)
    assert not Tenant.objects.filter(slug="bad").exists()


@pytest.fixture
def admin_client():
    from django.test import Client

    from accounts.models import User

    client = Client()
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    return client


def test_provisioning_refuses_to_run_inside_a_transaction():
    from django.db import transaction

    with transaction.atomic():
        refused("create", "tx", "--name", "Tx", "--placement", "schema", match="outside any")


def test_the_admin_shows_placement_read_only(admin_client):
    tenant = Tenant.objects.create(
        slug="shown", external_id="shown", name="Shown", placement="schema", placement_name="pt_x"
    )
    page = admin_client.get(f"/admin/tenants/tenant/{tenant.pk}/change/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "schema:pt_x" in body
    assert 'name="placement"' not in body and 'name="placement_name"' not in body
    listing = admin_client.get("/admin/tenants/tenant/?placement__exact=schema")
    assert listing.status_code == 200 and "schema:pt_x" in listing.content.decode()
