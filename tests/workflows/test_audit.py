"""Every API write is audited in its own transaction (actor, tenant, action, object, changed
field names, request id), and a tenant admin reads their own tenant's log at /api/audit/."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.context import no_tenant, tenant_context
from tenants.models import AuditEvent
from tests.conftest import make_member
from workflows import services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def events(**filters) -> list[AuditEvent]:
    with no_tenant():
        return list(AuditEvent.objects.filter(**filters).order_by("id"))


def test_api_writes_are_audited_with_actor_object_fields_and_request_id(tenant_a, user_a):
    client = client_of(user_a)
    created = client.post("/api/workflows/", {"name": "Invoices"}, format="json").json()
    client.patch(
        f"/api/workflows/{created['id']}/", {"description": "d", "name": "Invoices"}, format="json"
    )
    run = client.post(f"/api/workflows/{created['id']}/runs/", {}, format="json").json()

    create, change, started = (
        events(action="workflow.create")[0],
        events(action="workflow.change")[0],
        events(action="workflow.run")[0],
    )
    for event in (create, change, started):
        assert event.actor == "ann" and event.tenant_id_value == tenant_a.pk
        assert event.request_id
    assert (
        create.details["object"] == "workflows.workflow" and create.details["id"] == created["id"]
    )
    assert change.details["changed"] == ["description"]  # the name was sent but did not change
    assert "d" not in change.details.values()  # names, never values
    assert started.details == {
        "object": "workflows.workflowrun",
        "id": run["id"],
        "repr": f"run {run['id']} of {created['id']}",
        "changed": ["input"],
        "workflow": created["id"],
    }
    assert len({create.request_id, change.request_id, started.request_id}) == 3


def test_a_delete_is_audited_and_a_failed_write_leaves_no_audit_row(tenant_a, user_a):
    with tenant_context(tenant_a):
        from accounts.models import Membership

        Membership.objects.filter(user=user_a).update(role="admin")
    client = client_of(user_a)
    first = client.post("/api/workflows/", {"name": "one"}, format="json").json()
    duplicate = client.post("/api/workflows/", {"name": "one"}, format="json")
    assert duplicate.status_code == 409
    assert len(events(action="workflow.create")) == 1  # rolled back with the refused insert
    assert client.delete(f"/api/workflows/{first['id']}/").status_code == 204
    [deleted] = events(action="workflow.delete")
    assert deleted.details["id"] == first["id"] and deleted.details["runs_deleted"] == 0


@pytest.fixture
def logs(tenant_a, tenant_b, user_a, user_b):
    admin_a = make_member(tenant=tenant_a, username="ada", role="admin")
    make_member(tenant=tenant_b, username="bea", role="admin")
    for tenant, owner in ((tenant_a, user_a), (tenant_b, user_b)):
        with tenant_context(tenant):
            for index in range(3):
                flow = services.workflow_create(name=f"{tenant.slug}-{index}", owner=owner)
                services.run_start(workflow=flow)
    return admin_a


def test_a_tenant_admin_reads_only_their_tenants_log_page_by_page(tenant_a, tenant_b, logs):
    client = client_of(logs)
    seen, url = [], "/api/audit/?page_size=2"
    while url:
        page = client.get(url).json()
        assert len(page["results"]) <= 2
        seen.extend(page["results"])
        url = page["next"]
    ids = {event["id"] for event in seen}
    assert ids == {event.pk for event in events(tenant_id_value=tenant_a.pk)}
    assert len(ids) == 6 and not ids & {e.pk for e in events(tenant_id_value=tenant_b.pk)}
    assert all("bravo" not in str(event) for event in seen)


def test_the_audit_log_filters(tenant_a, logs):
    client = client_of(logs)
    runs = client.get("/api/audit/", {"action": "workflow.run"}).json()["results"]
    assert len(runs) == 3 and {e["action"] for e in runs} == {"workflow.run"}
    prefix = client.get("/api/audit/", {"action_prefix": "workflow."}).json()["results"]
    assert len(prefix) == 6
    one = runs[0]["details"]["id"]
    by_object = client.get(
        "/api/audit/", {"object": "workflows.workflowrun", "object_id": one}
    ).json()["results"]
    assert [e["details"]["id"] for e in by_object] == [one]
    assert client.get("/api/audit/", {"actor": "nobody"}).json()["results"] == []


def test_members_and_viewers_may_not_read_the_audit_log(tenant_a, user_a, logs):
    viewer = make_member(tenant=tenant_a, username="vic", role="viewer")
    for user in (user_a, viewer):
        response = client_of(user).get("/api/audit/")
        assert response.status_code == 403
        assert response.json()["code"] == "role_admin_required"
