"""The role matrix, generated from the router: every route and method as an admin, the member
who owns the workflow, another member and a viewer. Refusals are 403 with a code and write
nothing; everything else gets past the role check."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, reverse
from rest_framework.test import APIClient

from tenants.context import no_tenant, tenant_context
from tenants.models import AuditEvent
from tests.conftest import make_member
from workflows import services
from workflows.models import RunTicket, Workflow, WorkflowRun
from workflows.urls import router

pytestmark = pytest.mark.django_db
CALLERS = ["admin", "owner", "other_member", "viewer"]


def routes() -> list[tuple[str, str, bool]]:
    """(url name, method, addresses one object) for every route of the router."""
    found = set()
    for pattern in router.urls:
        if not isinstance(pattern, URLPattern) or not hasattr(pattern.callback, "actions"):
            continue
        detail = "pk" in pattern.pattern.regex.groupindex
        for method in pattern.callback.actions:
            found.add((pattern.name, method, detail))
    return sorted(found)


ROUTES = routes()


def test_the_matrix_covers_every_route_and_method():
    pairs = {(name, method) for name, method, _ in ROUTES}
    assert {
        ("workflow-list", "post"),
        ("workflow-detail", "delete"),
        ("workflow-detail", "patch"),
        ("workflow-runs", "post"),
        ("run-list", "post"),
        ("run-cancel", "post"),
        ("run-retry", "post"),
        ("run-approve", "post"),
    } <= pairs


def expected(caller: str, url_name: str, method: str) -> str | None:
    """The refusal code the caller must get, or None when the role allows the request."""
    if method in ("get", "head", "options"):
        return None
    if caller == "viewer":
        return "role_read_only"
    if caller == "admin" or (url_name, method) == ("workflow-list", "post"):
        return None
    if method == "delete":
        return "role_admin_required"
    return None if caller == "owner" else "role_not_owner"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(tenant_a):
    people = {
        "admin": make_member(tenant=tenant_a, username="ada", role="admin"),
        "owner": make_member(tenant=tenant_a, username="ann", role="member"),
        "other_member": make_member(tenant=tenant_a, username="max", role="member"),
        "viewer": make_member(tenant=tenant_a, username="vic", role="viewer"),
    }
    with tenant_context(tenant_a):
        workflow = services.workflow_create(name="owned", owner=people["owner"])
        run = services.run_start(workflow=workflow)
    return {"tenant": tenant_a, "people": people, "workflow": workflow, "run": run}


def snapshot(tenant) -> list:
    with tenant_context(tenant):
        state = [
            list(Workflow.objects.order_by("id").values()),
            list(WorkflowRun.objects.order_by("id").values()),
            list(RunTicket.objects.order_by("id").values()),
        ]
    with no_tenant():
        state.append(list(AuditEvent.objects.exclude(action__endswith="refused").values("id")))
    return state


def request(client, world, url_name: str, method: str, detail: bool):
    target = world["run"] if url_name.startswith("run") else world["workflow"]
    url = reverse(url_name, kwargs={"pk": target.pk}) if detail else reverse(url_name)
    body = {
        "workflow-list": {"name": "new one"},
        "workflow-detail": {"name": "renamed"},
        "workflow-runs": {"input": {"x": 1}},
        "run-list": {"workflow": world["workflow"].pk},
        "run-approve": {"approval": "manager"},
    }.get(url_name, {})
    if method == "get":
        return client.get(url)  # a body would become query filters
    return getattr(client, method)(url, data=body, format="json")


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("url_name,method,detail", ROUTES)
def test_role_matrix(world, caller, url_name, method, detail):
    client = APIClient()
    client.force_login(world["people"][caller])
    before = snapshot(world["tenant"])

    response = request(client, world, url_name, method, detail)

    refusal = expected(caller, url_name, method)
    if refusal is None:
        # Allowed by the role; the run's state may still refuse (409), never the role.
        assert response.status_code in (200, 201, 204, 409), response.content
    else:
        assert response.status_code == 403, response.content
        assert response.json()["code"] == refusal
        assert snapshot(world["tenant"]) == before


def test_a_viewer_reads_everything_a_member_reads(world):
    client = APIClient()
    client.force_login(world["people"]["viewer"])
    assert [w["name"] for w in client.get("/api/workflows/").json()["results"]] == ["owned"]
    assert client.get(f"/api/runs/{world['run'].pk}/").status_code == 200
    assert client.get("/api/me/").json()["role"] == "viewer"


def test_the_openapi_schema_states_the_rules(world):
    client = APIClient()
    client.force_login(world["people"]["viewer"])
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    destroy = schema["paths"]["/api/workflows/{id}/"]["delete"]["description"]
    assert "role_admin_required" in destroy and "viewer" in destroy
