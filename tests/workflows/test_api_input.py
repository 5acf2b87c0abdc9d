"""Malformed input never reaches PostgreSQL or Python's recursion limit: every case answers a
4xx JSON error in the one error shape, and nothing is written (issue 10, points 12 and 14-17)."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient

from ameide.api_io import DRAIN_FACTOR, MAX_JSON_DEPTH, ApiBodyGuardMiddleware
from tenants.context import tenant_context
from tests.tenant_rows import every_tenants_rows
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db

ERROR_KEYS = {"detail", "code", "errors"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) <= ERROR_KEYS and {"detail", "code"} <= set(body), body
    assert isinstance(body["detail"], str) and isinstance(body["code"], str)
    for messages in body.get("errors", {}).values():
        assert messages and all(isinstance(message, str) for message in messages)
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def api(user_a):
    # A 500 comes back as a response (handler500), not as an exception in the test.
    client = APIClient(raise_request_exception=False)
    client.force_login(user_a)
    return client


@pytest.fixture
def workflow(tenant_a, user_a):
    # Owned by the caller: a member writes only their own workflows (the role check comes
    # before the body is read; tests/workflows/test_api_roles.py).
    with tenant_context(tenant_a):
        workflow = Workflow.objects.create(name="kept", definition={"steps": [1]}, owner=user_a)
        WorkflowRun.objects.create(workflow=workflow, input={"n": 1})
    return workflow


def snapshot() -> list:
    return [every_tenants_rows(Workflow), every_tenants_rows(WorkflowRun)]


def writes(workflow: Workflow) -> list[tuple[str, str, str, callable]]:
    """(method, url, the JSON field, body builder) of every write that takes a JSON object."""
    detail = f"/api/workflows/{workflow.pk}/"
    return [
        ("post", "/api/workflows/", "definition", lambda v: {"name": "new", "definition": v}),
        ("put", detail, "definition", lambda v: {"name": "kept", "definition": v}),
        ("patch", detail, "definition", lambda v: {"definition": v}),
        ("post", f"{detail}runs/", "input", lambda v: {"input": v}),
        ("post", "/api/runs/", "input", lambda v: {"workflow": workflow.pk, "input": v}),
    ]


UNSTORABLE = {
    "NUL in a value": {"a": "x\x00y"},
    "NUL in a key": {"a\x00": 1},
    "lone surrogate in a value": {"a": "\ud800"},
    "lone surrogate in a key": {"\udfff": 1},
    "NUL deep inside": {"a": [{"b": {"c": ["\x00"]}}]},
}


# --- point 12: NUL and lone surrogates -------------------------------------------------------------
@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_json_postgresql_cannot_store_is_400_on_every_write(api, workflow, case):
    before = snapshot()
    for method, url, field, body in writes(workflow):
        # json.dumps escapes both as \u0000 and \ud800: valid JSON, unstorable in jsonb.
        payload = json.dumps(body(UNSTORABLE[case]))
        response = getattr(api, method)(url, data=payload, content_type="application/json")
        errors = assert_error(response, 400, "invalid")["errors"]
        assert list(errors) == [field], (method, url, errors)
        assert "\x00" not in response.content.decode() and "\\u0000" not in errors[field][0]
    assert snapshot() == before


def test_valid_unicode_still_goes_through(api, workflow):
    definition = {"emoji": "\U0001f600", "accents": "déjà", "cjk": "工作流", "tab": "a\tb"}
    response = api.patch(
        f"/api/workflows/{workflow.pk}/", {"definition": definition}, format="json"
    )
    assert response.status_code == 200 and response.json()["definition"] == definition


# --- point 16: depth --------------------------------------------------------------------------------
def nested(levels: int) -> str:
    """A request body (JSON text) whose innermost container sits `levels` containers deep."""
    lists = levels - 3  # the body, the definition and the innermost {} are the other three
    return f'{{"name": "depth {levels}", "definition": {{"v": {"[" * lists}{{}}{"]" * lists}}}}}'


def test_json_at_the_depth_limit_is_accepted(api, tenant_a):
    response = api.post(
        "/api/workflows/", data=nested(MAX_JSON_DEPTH), content_type="application/json"
    )
    assert response.status_code == 201, response.content[:300]


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 500, 990, 5000])
def test_json_deeper_than_the_limit_is_400(api, tenant_a, levels):
    before = snapshot()
    response = api.post("/api/workflows/", data=nested(levels), content_type="application/json")
    body = assert_error(response, 400)
    assert str(MAX_JSON_DEPTH) in json.dumps(body)
    assert snapshot() == before


def test_unclosed_deep_json_is_400_too(api, tenant_a):
    response = api.post("/api/workflows/", data="[" * 100_000, content_type="application/json")
    assert_error(response, 400)


def test_non_finite_numbers_are_400(api, tenant_a):
    response = api.post(
        "/api/workflows/",
        data='{"name": "x", "definition": {"a": 1e400}}',
        content_type="application/json",
    )
    assert "definition" in assert_error(response, 400, "invalid")["errors"]


# --- point 14: cursors --------------------------------------------------------------------------------
def cursor(query: bytes) -> str:
    return base64.b64encode(query).decode()


TAMPERED = {
    "cD14 (p=x)": "cD14",
    "year 99999": cursor(b"p=99999-01-01 00:00:00+00:00"),
    "offset +22:02": cursor(b"p=2024-01-01 00:00:00+22:02"),
    "naive time": cursor(b"p=2024-01-01 00:00:00"),
    "NUL": cursor(b"p=\x00"),
    "2^63": cursor(b"p=9223372036854775808"),
    "huge reverse flag": cursor(b"r=" + b"9" * 5000),
    "bad base64 padding": "abc",
    "not ascii": "é",
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_cursors_are_a_404_invalid_cursor(api, workflow, case):
    for url in ("/api/workflows/", "/api/runs/", f"/api/workflows/{workflow.pk}/runs/"):
        assert_error(api.get(url, {"cursor": TAMPERED[case]}), 404, "invalid_cursor")


@pytest.mark.parametrize("position", [b"p=\x00", b"p=" + b"x" * 10])
def test_cursor_positions_are_checked_against_the_ordering_field(api, workflow, position):
    response = api.get("/api/workflows/", {"cursor": cursor(position), "ordering": "name"})
    if b"\x00" in position:
        assert_error(response, 404, "invalid_cursor")
    else:
        assert response.status_code == 200  # any text is a valid name position


def test_issued_cursors_still_work_in_every_ordering(api, tenant_a):
    with tenant_context(tenant_a):
        for i in range(5):
            Workflow.objects.create(name=f"w{i}")
    for ordering, expected in [("name", [f"w{i}" for i in range(5)]), ("-created_at", None)]:
        seen, url = [], f"/api/workflows/?page_size=2&ordering={ordering}"
        while url:
            page = api.get(url)
            assert page.status_code == 200, page.content
            seen += [w["name"] for w in page.json()["results"]]
            url = page.json()["next"]
        assert seen == (expected or [f"w{i}" for i in reversed(range(5))])


# --- point 15: UTC offsets ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    ["2024-01-01T00:00:00+23:00", "2024-01-01T00:00:00-16:00", "2024-01-01T00:00:00+22:02"],
)
def test_utc_offsets_beyond_15_59_are_400_on_list_and_detail_routes(api, workflow, value):
    before = snapshot()
    detail = f"/api/workflows/{workflow.pk}/"
    for name in ("created_after", "created_before"):
        assert name in assert_error(api.get("/api/workflows/", {name: value}), 400)["errors"]
        assert name in assert_error(api.get(detail, {name: value}), 400)["errors"]
        response = api.delete(f"{detail}?{name}={value.replace('+', '%2B')}")
        assert name in assert_error(response, 400)["errors"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "value", ["2024-01-01T00:00:00+15:59", "2024-01-01T00:00:00-15:59", "2024-01-01T00:00:00Z"]
)
def test_offsets_postgresql_holds_still_filter(api, workflow, value):
    response = api.get("/api/workflows/", {"created_after": value})
    assert response.status_code == 200 and [w["name"] for w in response.json()["results"]] == [
        "kept"
    ]


# --- point 18: empty and invalid filter values ------------------------------------------------------
@pytest.mark.parametrize(
    "url,params,field",
    [
        ("/api/workflows/", {"status": ""}, "status"),
        ("/api/workflows/", {"name": ""}, "name"),
        ("/api/workflows/", {"created_after": ""}, "created_after"),
        ("/api/workflows/", {"created_before": "yesterday"}, "created_before"),
        ("/api/workflows/", {"created_after": "2024-01-01T00:00:00"}, "created_after"),
        ("/api/workflows/", {"created_after": "2024-02-30T00:00:00Z"}, "created_after"),
        ("/api/workflows/", {"ordering": ""}, "ordering"),
        ("/api/workflows/", {"ordering": "bogus"}, "ordering"),
        ("/api/workflows/", {"ordering": "name,status"}, "ordering"),
        ("/api/workflows/", {"page_size": "0"}, "page_size"),
        ("/api/workflows/", {"page_size": "-1"}, "page_size"),
        ("/api/workflows/", {"page_size": "ten"}, "page_size"),
        ("/api/runs/", {"workflow": ""}, "workflow"),
        ("/api/runs/", {"workflow": "1.5"}, "workflow"),
        ("/api/runs/", {"workflow": "0"}, "workflow"),
        ("/api/runs/", {"status": ""}, "status"),
    ],
)
def test_empty_or_invalid_filter_values_are_400_not_ignored(api, workflow, url, params, field):
    assert field in assert_error(api.get(url, params), 400, "invalid")["errors"]


def test_large_page_sizes_are_capped(api, workflow):
    response = api.get("/api/workflows/", {"page_size": "9" * 40})
    assert response.status_code == 200 and len(response.json()["results"]) == 1


def test_runs_of_a_workflow_take_the_runs_filters_not_the_workflows(api, workflow):
    url = f"/api/workflows/{workflow.pk}/runs/"
    assert len(api.get(url, {"status": "queued"}).json()["results"]) == 1
    assert api.get(url, {"status": "failed"}).json()["results"] == []
    # "archived" is a workflow status: it used to filter the parent lookup into a 404.
    assert "status" in assert_error(api.get(url, {"status": "archived"}), 400)["errors"]
    assert api.get(url, {"ordering": "-created_at"}).status_code == 200
    assert "ordering" in assert_error(api.get(url, {"ordering": "name"}), 400)["errors"]


# --- point 18: bodies take the documented JSON types -------------------------------------------------
@pytest.mark.parametrize(
    "url_name,body,field",
    [
        ("workflows", {"name": 10000000.0}, "name"),
        ("workflows", {"name": 7}, "name"),
        ("workflows", {"name": " padded"}, "name"),
        ("workflows", {"name": "padded\n"}, "name"),
        ("workflows", {"name": "x" * 201}, "name"),
        ("workflows", {"name": "ok", "description": 5}, "description"),
        ("workflows", {"name": "ok", "definition": None}, "definition"),
        ("runs", {"workflow": "WORKFLOW"}, "workflow"),
        ("runs", {"workflow": 1.5}, "workflow"),
        ("runs", {"workflow": True}, "workflow"),
        ("runs", {"workflow": 2**63}, "workflow"),
        ("runs", {"workflow": 1, "input": [1]}, "input"),
    ],
)
def test_bodies_take_only_the_documented_types(api, workflow, url_name, body, field):
    before = snapshot()
    body = {k: str(workflow.pk) if v == "WORKFLOW" else v for k, v in body.items()}
    response = api.post(f"/api/{url_name}/", body, format="json")
    assert field in assert_error(response, 400, "invalid")["errors"]
    assert snapshot() == before


def test_names_keep_inner_spaces_and_ids_may_be_written_as_whole_floats(api, workflow):
    assert api.post("/api/workflows/", {"name": "a  b"}, format="json").json()["name"] == "a  b"
    run = api.post("/api/runs/", {"workflow": float(workflow.pk)}, format="json")
    assert run.status_code == 201 and run.json()["workflow"] == workflow.pk


# --- point 17: bodies are JSON, bounded; answers are JSON ------------------------------------------
@pytest.mark.parametrize("fmt", ["multipart", "form"])
def test_non_json_bodies_are_415_before_anything_parses_them(api, tenant_a, monkeypatch, fmt):
    from django.http import multipartparser

    def never(*args, **kwargs):
        raise AssertionError("a multipart body was parsed")

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", never)
    before = snapshot()
    if fmt == "multipart":
        response = api.post(
            "/api/workflows/", {"name": "mp", "file": b"x" * 4096}, format="multipart"
        )
    else:
        response = api.post(
            "/api/workflows/", data="name=form", content_type="application/x-www-form-urlencoded"
        )
    assert_error(response, 415, "unsupported_media_type")
    assert snapshot() == before


def test_json_over_the_limit_is_a_json_413(api, tenant_a, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = snapshot()
    body = json.dumps({"name": "big", "description": "x" * 20_000})
    assert_error(api.post("/api/workflows/", data=body, content_type="application/json"), 413)
    assert snapshot() == before
    small = json.dumps({"name": "small", "description": "x" * 5_000})
    assert (
        api.post("/api/workflows/", data=small, content_type="application/json").status_code == 201
    )


@pytest.mark.parametrize("factor,drained", [(2, True), (DRAIN_FACTOR + 1, False)])
def test_an_over_long_body_is_drained_up_to_a_bound(settings, factor, drained):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    request = RequestFactory().post(
        "/api/workflows/", data=b"x" * (1000 * factor), content_type="application/json"
    )
    response = ApiBodyGuardMiddleware(lambda request: pytest.fail("reached the view"))(request)
    assert_error(response, 413, "payload_too_large")
    assert (request.read(1) == b"") is drained


def test_a_500_under_api_is_json(api, tenant_a, monkeypatch):
    from workflows.views import WorkflowViewSet

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(WorkflowViewSet, "selector", staticmethod(broken))
    response = api.get("/api/workflows/")
    assert assert_error(response, 500, "server_error") == {
        "detail": "Server error.",
        "code": "server_error",
    }


def test_unknown_api_paths_are_json_404s(api):
    assert_error(api.get("/api/nothing/here/"), 404, "not_found")


@pytest.mark.parametrize("debug", [False, True])
def test_the_browsable_api_is_served_only_with_debug(api, tenant_a, settings, debug):
    settings.DEBUG = debug
    response = api.get("/api/workflows/", {"format": "api"})
    html = api.get("/api/workflows/", HTTP_ACCEPT="text/html,*/*")
    if debug:
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    else:
        assert_error(response, 404, "not_found")
        assert html.status_code == 200 and html["Content-Type"] == "application/json"


# --- point 9: one error shape ------------------------------------------------------------------------
def test_every_error_has_the_one_shape(api, workflow, user_a, tenant_b):
    from tests.conftest import make_member

    anonymous = APIClient()
    outsider = APIClient()
    outsider.force_login(make_member(tenant=tenant_b, username="olga"))
    detail = f"/api/workflows/{workflow.pk}/"
    assert_error(api.post("/api/workflows/", {}, format="json"), 400, "invalid")
    assert_error(
        api.post("/api/workflows/", data="{", content_type="application/json"), 400, "parse_error"
    )
    assert_error(anonymous.get("/api/workflows/"), 401, "not_authenticated")
    assert_error(outsider.get(detail), 404, "not_found")
    assert_error(api.get("/api/workflows/987654/"), 404, "not_found")
    assert_error(api.put("/api/runs/", {}, format="json"), 405, "method_not_allowed")
    assert_error(api.get("/api/workflows/", HTTP_ACCEPT="text/csv"), 406, "not_acceptable")
    assert_error(
        api.post("/api/workflows/", {"name": "kept"}, format="json"), 409, "duplicate_name"
    )
