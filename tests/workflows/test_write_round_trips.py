"""A write request is BEGIN with its first statement, its statements and COMMIT: no savepoints
where nothing needs one, and a refused write still leaves nothing behind."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.context import tenant_context
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


def _verbs(captured) -> list[str]:
    return [q["sql"].split(None, 1)[0].upper() for q in captured.captured_queries]


def test_a_create_sends_no_savepoint(client_a, tenant_a):
    with CaptureQueriesContext(connection) as captured:
        response = client_a.post("/api/workflows/", {"name": "first"}, format="json")
    assert response.status_code == 201, response.content
    verbs = _verbs(captured)
    assert "SAVEPOINT" not in verbs and "RELEASE" not in verbs, verbs
    assert "INSERT" in verbs
    with tenant_context(tenant_a):
        assert list(Workflow.objects.values_list("name", flat=True)) == ["first"]


def test_a_duplicate_name_is_409_and_writes_nothing(client_a, tenant_a):
    from tenants.models import AuditEvent

    assert client_a.post("/api/workflows/", {"name": "same"}, format="json").status_code == 201
    events = AuditEvent.objects.count()
    response = client_a.post("/api/workflows/", {"name": "same"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "duplicate_name"
    assert AuditEvent.objects.count() == events
    with tenant_context(tenant_a):
        assert Workflow.objects.filter(name="same").count() == 1
    # The connection is usable for the next request.
    assert client_a.get("/api/workflows/").status_code == 200
