"""The workflows API as a member uses it: CRUD, runs, filters, pagination, errors, health."""

from __future__ import annotations

import pytest

from accounts.models import Membership
from tenants.context import tenant_context
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db


def test_anonymous_calls_get_401_with_www_authenticate(db):
    response = (
        __import__("rest_framework.test", fromlist=["APIClient"]).APIClient().get("/api/workflows/")
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_create_read_update_delete(client_a, tenant_a, user_a):
    created = client_a.post(
        "/api/workflows/",
        {"name": "Invoices", "definition": {"steps": [1]}, "status": "active"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["owner"] == "ann" and body["definition"] == {"steps": [1]}
    url = f"/api/workflows/{body['id']}/"
    assert client_a.get(url).json()["name"] == "Invoices"
    patched = client_a.patch(url, {"description": "monthly"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "monthly"
    run = client_a.post(f"{url}runs/", {"input": {"month": 11}}, format="json")
    assert run.status_code == 201 and run.json()["input"] == {"month": 11}
    runs = client_a.get(f"{url}runs/").json()["results"]
    assert [r["id"] for r in runs] == [run.json()["id"]]
    assert client_a.get(f"/api/runs/{run.json()['id']}/").json()["workflow"] == body["id"]
    # A member deletes nothing (tests/workflows/test_api_roles.py); the tenant's admin does.
    assert client_a.delete(url).status_code == 403
    with tenant_context(tenant_a):
        # By the user's id, not a join with the users: on Citus an UPDATE of memberships (a
        # reference table) joined with the coordinator's users does not plan (docs/citus.md).
        Membership.objects.filter(user=user_a).update(role="admin")
    assert client_a.delete(url).status_code == 204
    with tenant_context(tenant_a):
        assert not Workflow.objects.exists()
        assert not WorkflowRun.objects.exists()


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"name": ""}, "name"),
        ({"name": "x", "definition": [1, 2]}, "definition"),
        ({"name": "x", "status": "bogus"}, "status"),
        ({}, "name"),
    ],
)
def test_bad_input_is_a_clear_400_and_writes_nothing(client_a, tenant_a, payload, field):
    response = client_a.post("/api/workflows/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["detail"] == "Invalid input."
    assert field in body["errors"]
    with tenant_context(tenant_a):
        assert Workflow.objects.count() == 0


def test_malformed_json_is_400(client_a):
    response = client_a.post("/api/workflows/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_cursor_pagination_walks_newest_first(client_a, tenant_a):
    with tenant_context(tenant_a):
        for i in range(7):
            Workflow.objects.create(name=f"w{i}")
    seen, url = [], "/api/workflows/?page_size=3"
    while url:
        page = client_a.get(url).json()
        seen += [w["name"] for w in page["results"]]
        url = page["next"]
    assert seen == [f"w{i}" for i in reversed(range(7))]


def test_filters_and_ordering(client_a, tenant_a):
    with tenant_context(tenant_a):
        Workflow.objects.create(name="alpha report", status="active")
        Workflow.objects.create(name="beta", status="draft")
    active = client_a.get("/api/workflows/", {"status": "active"}).json()["results"]
    assert [w["name"] for w in active] == ["alpha report"]
    named = client_a.get("/api/workflows/", {"name": "REPORT"}).json()["results"]
    assert [w["name"] for w in named] == ["alpha report"]
    ordered = client_a.get("/api/workflows/", {"ordering": "name"}).json()["results"]
    assert [w["name"] for w in ordered] == ["alpha report", "beta"]


def test_me_names_user_and_tenant(client_a, tenant_a):
    body = client_a.get("/api/me/").json()
    assert body["user"]["username"] == "ann"
    assert body["tenant"] == {"id": tenant_a.pk, "slug": "alpha", "name": "Alpha Corp"}
    assert body["role"] == "member"


def test_a_member_removed_loses_access_on_the_next_request(client_a, user_a, tenant_a):
    from accounts.models import Membership

    assert client_a.get("/api/workflows/").status_code == 200
    with tenant_context(tenant_a):
        Membership.objects.filter(user=user_a).delete()
    for method in ("get", "post", "patch", "delete"):
        response = getattr(client_a, method)("/api/workflows/", {}, format="json")
        assert response.status_code == 403, method


def test_a_suspended_tenant_gets_403_and_keeps_its_data(client_a, tenant_a):
    from tenants.models import Tenant

    with tenant_context(tenant_a):
        Workflow.objects.create(name="kept")
    Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)
    assert client_a.get("/api/workflows/").status_code == 403
    with tenant_context(tenant_a):
        assert Workflow.objects.filter(name="kept").exists()


def test_schema_and_docs(client_a):
    schema = client_a.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/workflows/{id}/runs/" in schema.content
    assert client_a.get("/api/docs/").status_code == 200


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
