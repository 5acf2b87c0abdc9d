"""Acting as a tenant (explicit, reasoned, audited, bannered, admin-only) and the audit rows the
middleware writes for refused cross-tenant attempts."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from accounts.principal import SESSION_TENANT_KEY
from tenants.acting import SESSION_ACTING_KEY
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from tests.admin.support import SECRET
from workflows.models import Workflow

pytestmark = pytest.mark.django_db
ACT_AS = "/admin/act-as/"
STOP = "/admin/act-as/stop/"
WORKFLOWS = "/admin/workflows/workflow/"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def act_as(client: Client, tenant: Tenant, reason: str = "ticket 42: customer asked", **extra):
    return client.post(ACT_AS, {"tenant": tenant.pk, "reason": reason, **extra})


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501])
def test_acting_needs_a_reason(client_platform, world, tenant_a, reason):
    response = act_as(client_platform, tenant_a, reason=reason)
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert SESSION_ACTING_KEY not in client_platform.session
    assert not events("act_as.start")
    assert "Choose a tenant first" in client_platform.get(WORKFLOWS).content.decode()


def test_acting_as_a_tenant_is_audited_bannered_scoped_and_stoppable(
    client_platform, world, tenant_a
):
    response = act_as(client_platform, tenant_a, next=WORKFLOWS)
    assert response.status_code == 302 and response["Location"] == WORKFLOWS
    [start] = events("act_as.start")
    assert (start.actor, start.tenant_slug, start.reason) == (
        "root",
        "alpha",
        "ticket 42: customer asked",
    )
    page = client_platform.get(WORKFLOWS)
    body = page.content.decode()
    assert "Acting as <strong>Alpha Corp (alpha)</strong>" in body
    assert "ticket 42: customer asked" in body and 'id="act-as-stop"' in body
    assert {w.name for w in page.context["cl"].result_list} == {"alpha-flow", "alpha-second"}
    assert SECRET not in body
    for path in ("/admin/", "/admin/tenants/tenant/", "/admin/tenants/auditevent/"):
        assert "Acting as <strong>Alpha Corp" in client_platform.get(path).content.decode()

    workflow = world["a"]["workflow"]
    change = client_platform.post(
        f"{WORKFLOWS}{workflow.pk}/change/",
        {
            "name": "alpha-flow-renamed",
            "definition": "{}",
            "status": "active",
            "owner": workflow.owner_id,
            "runs-TOTAL_FORMS": "0",
            "runs-INITIAL_FORMS": "0",
        },
    )
    assert change.status_code == 302
    [audit] = events("admin.change")
    assert (audit.actor, audit.acting_as, audit.tenant_slug) == ("root", "alpha", "alpha")
    assert LogEntry.objects.filter(object_id=str(workflow.pk)).count() == 1

    stopped = client_platform.post(STOP)
    assert stopped.status_code == 302
    [stop] = events("act_as.stop")
    assert (stop.actor, stop.tenant_slug, stop.acting_as) == ("root", "alpha", "alpha")
    after = client_platform.get(WORKFLOWS).content.decode()
    assert "Acting as" not in after and "Choose a tenant first" in after
    assert "Platform console — no tenant selected." in after


def test_stop_needs_a_post(client_platform, world, tenant_a):
    act_as(client_platform, tenant_a)
    assert client_platform.get(STOP).status_code == 405
    assert SESSION_ACTING_KEY in client_platform.session


def test_switching_tenants_ends_the_first(client_platform, world, tenant_a, tenant_b):
    act_as(client_platform, tenant_a)
    act_as(client_platform, tenant_b, reason="second ticket")
    assert [e.tenant_slug for e in events("act_as.start")] == ["alpha", "bravo"]
    assert [e.tenant_slug for e in events("act_as.stop")] == ["alpha"]
    names = {w.name for w in client_platform.get(WORKFLOWS).context["cl"].result_list}
    assert names == {f"{SECRET}-workflow"}


def test_signing_out_ends_acting(client_platform, world, tenant_a):
    act_as(client_platform, tenant_a)
    client_platform.post(reverse("admin:logout"))
    [stop] = events("act_as.stop")
    assert stop.details["why"] == "signed out"


def test_acting_as_applies_to_the_admin_only_never_to_the_api(client_platform, world, tenant_a):
    act_as(client_platform, tenant_a)
    response = client_platform.get("/api/workflows/")
    assert response.status_code in (401, 403)
    assert b"alpha-flow" not in response.content


def test_a_deleted_tenant_cannot_be_entered_and_deleting_ends_acting(
    client_platform, world, tenant_a, tenant_b
):
    tenant_b.status = Tenant.Status.DELETED
    tenant_b.save()
    response = act_as(client_platform, tenant_b)
    assert response.status_code == 200 and response.context["form"].errors["tenant"]
    act_as(client_platform, tenant_a)
    tenant_a.status = Tenant.Status.DELETED
    tenant_a.save()
    assert "Choose a tenant first" in client_platform.get(WORKFLOWS).content.decode()


def test_a_suspended_tenant_can_be_inspected_and_the_banner_says_so(
    client_platform, world, tenant_a
):
    tenant_a.status = Tenant.Status.SUSPENDED
    tenant_a.save()
    act_as(client_platform, tenant_a)
    body = client_platform.get(WORKFLOWS).content.decode()
    assert "tenant is suspended" in body and "alpha-flow" in body


def test_an_unsafe_next_goes_to_the_index(client_platform, world, tenant_a):
    response = act_as(client_platform, tenant_a, next="https://evil.example/")
    assert response["Location"] == reverse("admin:index")


def test_the_act_as_form_preselects_a_tenant_and_lists_no_deleted_ones(
    client_platform, world, tenant_a
):
    Tenant.objects.create(slug="gone", external_id="gone", name="Gone", status="deleted")
    response = client_platform.get(f"{ACT_AS}?tenant={tenant_a.pk}")
    form = response.context["form"]
    assert form["tenant"].value() == str(tenant_a.pk)
    assert "gone" not in {t.slug for t in form.fields["tenant"].queryset}


# -- refused cross-tenant attempts leave an audit row ---------------------------------------


def test_a_session_pointing_at_another_tenant_is_refused_and_audited(world, tenant_a, user_b):
    client = Client()
    client.force_login(user_b)
    session = client.session
    session[SESSION_TENANT_KEY] = tenant_a.pk
    session.save()
    before = AuditEvent.objects.count()
    for path in ("/api/workflows/", WORKFLOWS):
        assert client.get(path).status_code == 403
    refusals = events("refused.cross_tenant")
    assert len(refusals) == 2 and AuditEvent.objects.count() == before + 2
    assert {(e.actor, e.tenant_slug, e.details["code"]) for e in refusals} == {
        ("bob", "alpha", "not_a_member")
    }
    assert [e.details["path"] for e in refusals] == ["/api/workflows/", WORKFLOWS]


def test_a_user_whose_membership_was_removed_is_refused_with_a_page_in_the_admin(
    client_admin_a, admin_a, world, tenant_a
):
    from accounts.models import Membership

    with tenant_context(tenant_a):
        Membership.objects.filter(user=admin_a).delete()
    response = client_admin_a.get(WORKFLOWS)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert "You are not a member of this tenant." in response.content.decode()
    [event] = events("refused.cross_tenant")
    assert (event.actor, event.tenant_slug) == ("alpha-admin", "alpha")
    with tenant_context(tenant_a):
        assert Workflow.objects.count() == 2


def test_unauthenticated_requests_are_not_audited_as_refusals(world):
    assert Client().get("/api/workflows/").status_code in (401, 403)
    assert not events("refused.cross_tenant")


def test_acting_as_a_platform_admin_adds_an_existing_user_as_a_member(
    client_platform, world, tenant_a
):
    from accounts.models import Membership, User

    newcomer = User.objects.create_user(username="newcomer")
    act_as(client_platform, tenant_a)
    found = client_platform.get(
        "/admin/autocomplete/",
        {"app_label": "accounts", "model_name": "membership", "field_name": "user", "term": "new"},
    )
    assert [item["text"] for item in found.json()["results"]] == ["newcomer"]
    response = client_platform.post(
        "/admin/accounts/membership/add/", {"user": newcomer.pk, "role": "admin"}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        assert Membership.objects.get(user=newcomer).role == "admin"
    [added] = events("admin.add")
    assert (added.acting_as, added.tenant_slug) == ("alpha", "alpha")
    again = client_platform.post(
        "/admin/accounts/membership/add/", {"user": newcomer.pk, "role": "member"}
    )
    assert again.status_code == 200 and again.context["adminform"].form.errors


def test_recent_actions_show_only_outside_a_tenant(
    client_platform, client_admin_a, world, tenant_a
):
    assert "Recent actions" in client_platform.get("/admin/").content.decode()
    act_as(client_platform, tenant_a)
    assert "Recent actions" not in client_platform.get("/admin/").content.decode()
    assert "Recent actions" not in client_admin_a.get("/admin/").content.decode()
