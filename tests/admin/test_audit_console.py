"""The audit log in the admin: a tenant admin sees their own tenant's events only, and admin
writes record the names of the fields they changed."""

from __future__ import annotations

from django.urls import reverse

from tenants.context import no_tenant, tenant_context
from tenants.models import AuditEvent
from workflows.models import RunTicket, Workflow


def test_a_tenant_admin_reads_only_their_tenants_events(client_admin_a, world, tenant_a):
    workflow = world["a"]["workflow"]
    url = reverse("admin:workflows_workflow_change", args=[workflow.pk])
    response = client_admin_a.post(
        url,
        {
            "name": "alpha-renamed",
            "description": workflow.description,
            "definition": "{}",
            "status": workflow.status,
            "owner": workflow.owner_id,
            "runs-TOTAL_FORMS": "1",
            "runs-INITIAL_FORMS": "1",
            "runs-0-id": world["a"]["run"].pk,
            "runs-0-workflow": workflow.pk,
            "runs-0-status": "queued",
        },
    )
    assert response.status_code == 302, response.content
    with no_tenant():
        [change] = AuditEvent.objects.filter(action="admin.change")
    changed = change.details["changed"]
    assert "name" in changed and "description" not in changed and "owner" not in changed
    assert change.tenant_id_value == tenant_a.pk

    changelist = client_admin_a.get(reverse("admin:tenants_auditevent_changelist"))
    assert changelist.status_code == 200
    shown = list(changelist.context["cl"].result_list)
    assert shown and {event.tenant_id_value for event in shown} == {tenant_a.pk}


def test_a_run_added_in_the_admin_is_queued_for_the_worker(client_admin_a, world, tenant_a):
    response = client_admin_a.post(
        reverse("admin:workflows_workflowrun_add"),
        {
            "workflow": world["a"]["workflow"].pk,
            "status": "queued",
            "input": "{}",
            "output": "{}",
            "log": "[]",
            "approvals": "{}",
            "step": "0",
            "attempts": "0",
            "error": "",
        },
    )
    assert response.status_code == 302, response.content
    with tenant_context(tenant_a):
        assert RunTicket.objects.filter(tenant_ref=tenant_a.pk).count() == 1
        assert Workflow.objects.filter(pk=world["a"]["workflow"].pk).exists()


def test_a_tenant_admin_cannot_open_another_tenants_event_or_change_any(
    client_admin_a, world, tenant_b
):
    from tenants.audit import record_event

    with no_tenant():
        theirs = record_event(action="test.b", tenant=tenant_b)
    url = reverse("admin:tenants_auditevent_change", args=[theirs.pk])
    response = client_admin_a.get(url)
    assert response.status_code == 302  # "does not exist" redirect, the same as a missing id
    missing = client_admin_a.get(reverse("admin:tenants_auditevent_change", args=[987654]))
    assert missing.status_code == response.status_code
    assert client_admin_a.post(url, {"action": "rewritten"}).status_code in (302, 403)
    with no_tenant():
        assert AuditEvent.objects.get(pk=theirs.pk).action == "test.b"
