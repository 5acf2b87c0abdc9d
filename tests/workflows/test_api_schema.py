"""The published schema says what the API does (issue 10, point 18); the fuzz run in
test_schema_fuzz.py holds the API to it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client_a) -> dict:
    response = client_a.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def json_schema(response: dict) -> dict:
    return response["content"]["application/json"]["schema"]


def test_starting_a_run_is_documented_as_201_with_one_run(schema):
    post = schema["paths"]["/api/workflows/{id}/runs/"]["post"]
    assert "200" not in post["responses"]
    assert json_schema(post["responses"]["201"]) == {"$ref": "#/components/schemas/WorkflowRun"}
    assert json_schema(post["requestBody"]) == {"$ref": "#/components/schemas/WorkflowRunCreate"}
    get = schema["paths"]["/api/workflows/{id}/runs/"]["get"]
    assert json_schema(get["responses"]["200"]) == {
        "$ref": "#/components/schemas/PaginatedWorkflowRunList"
    }


def test_the_runs_of_a_workflow_document_the_runs_filters(schema):
    get = schema["paths"]["/api/workflows/{id}/runs/"]["get"]
    params = {p["name"]: p["schema"] for p in get["parameters"] if p["in"] == "query"}
    assert set(params) == {"cursor", "page_size", "status", "ordering"}
    assert set(params["status"]["enum"]) == {
        "queued",
        "running",
        "waiting",
        "succeeded",
        "failed",
        "cancelled",
    }
    assert set(params["ordering"]["enum"]) == {"created_at", "-created_at"}


def test_every_operation_documents_its_errors_in_the_one_shape(schema):
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        expected = {"400", "401", "403", "429", "503"}
        if "{" in path or method == "get" and path != "/api/me/":
            expected.add("404")
        if method in {"post", "put", "patch"}:
            expected |= {"413", "415"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for code in responses:
            if code.startswith(("4", "5")):
                assert json_schema(responses[code]) == error, (method, path, code)
    component = schema["components"]["schemas"]["Error"]
    assert set(component["required"]) == {"detail", "code"}
    assert set(component["properties"]) == {"detail", "code", "errors"}


def test_writes_of_workflows_document_the_409_of_a_taken_name(schema):
    for method in ("put", "patch"):
        assert "409" in schema["paths"]["/api/workflows/{id}/"][method]["responses"]
    assert "409" in schema["paths"]["/api/workflows/"]["post"]["responses"]


def test_name_is_a_non_empty_string_without_padding(schema):
    name = schema["components"]["schemas"]["Workflow"]["properties"]["name"]
    assert name["type"] == "string" and name["minLength"] == 1 and name["maxLength"] == 200
    assert name["pattern"].startswith("^[^") and name["pattern"].endswith("$")


def test_filters_document_what_they_accept(schema):
    get = schema["paths"]["/api/workflows/"]["get"]
    params = {p["name"]: p["schema"] for p in get["parameters"]}
    assert params["name"]["minLength"] == 1
    assert params["page_size"]["minimum"] == 1
    assert "1[0-5]" in params["created_after"]["pattern"]  # offsets up to 15:59
    assert set(params["status"]["enum"]) == {"draft", "active", "archived"}


def test_request_bodies_are_json_only(schema):
    for path, method, operation in operations(schema):
        if "requestBody" in operation:
            assert set(operation["requestBody"]["content"]) == {"application/json"}, (method, path)
