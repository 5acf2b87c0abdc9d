"""The API isolation matrix, generated from the router: as a member of A, every endpoint and
method on B's objects answers exactly like on an id that does not exist, and writes nothing.
Once per pair of placements of A and B: shared tables, dedicated schemas, dedicated databases on
this server and another (tests/conftest.py)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.urls import URLPattern

from tenants.context import tenant_context
from tests import dedicated
from tests.placement.support import rows_everywhere
from tests.tenant_rows import every_tenants_rows
from workflows.models import Workflow, WorkflowRun
from workflows.urls import router

pytestmark = [pytest.mark.django_db(databases=dedicated.DATABASES), pytest.mark.every_placement]
MISSING_ID = 987654321


def detail_routes() -> list[tuple[str, str, str]]:
    """(url name, method, action) for every route that addresses one object by id."""
    routes = []
    for pattern in router.urls:
        if not isinstance(pattern, URLPattern) or "pk" not in pattern.pattern.regex.groupindex:
            continue
        if pattern.name.endswith("-detail") or "-" in pattern.name:
            actions = pattern.callback.actions
            for method, action in actions.items():
                routes.append((pattern.name, method, action))
    return sorted(set(routes))


ROUTES = detail_routes()


def test_the_matrix_covers_every_detail_route():
    names = {name for name, _, _ in ROUTES}
    assert {"workflow-detail", "workflow-runs", "run-detail"} <= names
    methods = {(name, method) for name, method, _ in ROUTES}
    assert ("workflow-detail", "delete") in methods and ("workflow-runs", "post") in methods


@pytest.fixture
def world(tenant_a, tenant_b, user_a, user_b):
    with tenant_context(tenant_b):
        wb = Workflow.objects.create(name="secret-b", description="b's")
        rb = WorkflowRun.objects.create(workflow=wb, input={"k": "b"})
    with tenant_context(tenant_a):
        # Each database numbers its rows itself: A's ids must differ from B's, or "B's id"
        # would name A's own row (ids are unique per tenant, not across databases).
        wa = Workflow.objects.create(name="mine-a")
        while wa.pk == wb.pk:
            wa.delete()
            wa = Workflow.objects.create(name="mine-a")
        ra = WorkflowRun.objects.create(workflow=wa)
        while ra.pk == rb.pk:
            ra.delete()
            ra = WorkflowRun.objects.create(workflow=wa)
    return {"a": tenant_a, "b": tenant_b, "wb": wb, "rb": rb, "wa": wa, "ra": ra}


def snapshot(world) -> list:
    """Every row of every tenant, each tenant's read under its own scope, in the database that
    holds its rows (a dedicated one, or the shared tables, also on Citus); and, off Citus, the
    tables of every schema read the audited cross-tenant way, so a row written into the wrong
    placement is a difference too."""
    rows = [
        every_tenants_rows(Workflow, "id", "tenant_id", "name", "description"),
        every_tenants_rows(WorkflowRun, "id", "tenant_id", "status"),
    ]
    if not settings.TENANCY_CITUS:
        rows += [
            rows_everywhere("workflows_workflow", "id, name, description"),
            rows_everywhere("workflows_workflowrun", "id, status"),
        ]
    return rows


def target_id(world, url_name: str) -> int:
    return world["rb"].pk if url_name.startswith("run") else world["wb"].pk


BODY = {"name": "renamed", "description": "pwned", "input": {"x": 1}}


@pytest.mark.parametrize("url_name,method,action", ROUTES)
def test_another_tenants_object_answers_like_a_missing_one(
    client_a, world, url_name, method, action
):
    from django.urls import reverse

    before = snapshot(world)
    responses = []
    for pk in (target_id(world, url_name), MISSING_ID):
        url = reverse(url_name, kwargs={"pk": pk})
        response = getattr(client_a, method)(url, data=BODY, format="json")
        responses.append((response.status_code, response.content))
    assert responses[0] == responses[1]
    assert responses[0][0] == 404
    body = json.loads(responses[0][1])
    assert body["code"] == "not_found" and body["detail"].startswith("No ")
    assert snapshot(world) == before


@pytest.mark.parametrize("url_name,method,action", ROUTES)
def test_malformed_ids_answer_404_too(client_a, world, url_name, method, action):
    from django.urls import reverse

    url = reverse(url_name, kwargs={"pk": MISSING_ID}).replace(str(MISSING_ID), "1e3")
    response = getattr(client_a, method)(url, data=BODY, format="json")
    assert response.status_code == 404


def _normalise(body: bytes, pk: int) -> str:
    return body.decode().replace(str(pk), "<id>")


@pytest.mark.parametrize(
    "path,field",
    [("/api/runs/", "workflow")],
)
def test_foreign_ids_in_bodies_get_the_same_400_as_missing_ids(client_a, world, path, field):
    before = snapshot(world)
    b_id = world["wb"].pk
    foreign = client_a.post(path, {field: b_id, "input": {}}, format="json")
    missing = client_a.post(path, {field: MISSING_ID, "input": {}}, format="json")
    assert foreign.status_code == missing.status_code == 400
    assert _normalise(foreign.content, b_id) == _normalise(missing.content, MISSING_ID)
    assert snapshot(world) == before


def test_list_endpoints_show_only_the_callers_tenant(client_a, client_b, world):
    for client, mine, theirs in (
        (client_a, "mine-a", "secret-b"),
        (client_b, "secret-b", "mine-a"),
    ):
        names = [w["name"] for w in client.get("/api/workflows/").json()["results"]]
        assert names == [mine]
        run_ids = {r["id"] for r in client.get("/api/runs/").json()["results"]}
        expected = world["ra"].pk if mine == "mine-a" else world["rb"].pk
        assert run_ids == {expected}


def test_filter_values_do_not_reach_another_tenant(client_a, world):
    response = client_a.get("/api/runs/", {"workflow": world["wb"].pk})
    assert response.status_code == 200 and response.json()["results"] == []
    missing = client_a.get("/api/runs/", {"workflow": MISSING_ID})
    assert _normalise(response.content, world["wb"].pk) == _normalise(missing.content, MISSING_ID)
    mine = client_a.get("/api/runs/", {"workflow": world["wa"].pk}).json()["results"]
    assert [run["id"] for run in mine] == [world["ra"].pk]


def test_same_name_in_two_tenants_is_fine_and_duplicate_in_one_is_409(client_a, client_b, world):
    assert client_a.post("/api/workflows/", {"name": "secret-b"}, format="json").status_code == 201
    duplicate = client_a.post("/api/workflows/", {"name": "mine-a"}, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "detail": "A workflow with this name already exists.",
        "code": "duplicate_name",
        "errors": {"name": ["A workflow with this name already exists."]},
    }
    with tenant_context(world["wb"].tenant):
        assert Workflow.objects.filter(name="secret-b").count() == 1
