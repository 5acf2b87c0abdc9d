"""The platform console: tenant lifecycle through services (each audited), the read-only audit
log, users, and tenant-model pages that ask for a tenant instead of failing."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from tenants.admin_site import model_admins_of_tenant_models
from tenants.audit import record_event
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from tests.admin.support import SECRET, snapshot_all
from workflows.models import Workflow

pytestmark = pytest.mark.django_db
TENANT_MODELS = sorted(model_admins_of_tenant_models(admin.site), key=lambda m: m._meta.label)


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m._meta.label)
def test_tenant_model_pages_ask_a_platform_admin_to_choose_a_tenant(client_platform, world, model):
    obj = world["a"]["workflow"] if model is Workflow else None
    paths = [url(model, "changelist"), url(model, "add")]
    if obj is not None:
        paths += [url(model, view, obj.pk) for view in ("change", "delete", "history")]
    before = snapshot_all()
    for path in paths:
        for method in ("get", "post"):
            response = getattr(client_platform, method)(path)
            assert response.status_code == 200, (method, path)
            body = response.content.decode()
            assert "Choose a tenant first" in body and 'id="choose-tenant"' in body, path
            assert SECRET not in body and "alpha-flow" not in body
    assert snapshot_all() == before


def test_other_tenant_data_urls_never_500_without_a_tenant(client_platform, world):
    workflow = world["a"]["workflow"]
    content_type = ContentType.objects.get_for_model(Workflow)
    paths = [
        reverse("admin:view_on_site", args=[content_type.pk, workflow.pk]),
        reverse("admin:autocomplete")
        + "?app_label=workflows&model_name=workflowrun&field_name=workflow",
        "/admin/workflows/",
    ]
    for path in paths:
        response = client_platform.get(path)
        assert response.status_code in (200, 404), path
        assert "alpha-flow" not in response.content.decode()


def test_the_platform_index_lists_everything_with_a_no_tenant_banner(client_platform, world):
    response = client_platform.get(reverse("admin:index"))
    body = response.content.decode()
    shown = {m["object_name"] for app in response.context["app_list"] for m in app["models"]}
    assert {"Tenant", "AuditEvent", "User", "IdentityProvider", "Workflow"} <= shown
    assert "Group" not in shown  # permissions come from roles, not groups
    assert "Platform console — no tenant selected." in body


def test_a_platform_admins_own_membership_does_not_open_a_tenant_in_the_admin(
    client_platform, platform_admin, world, tenant_b
):
    from accounts.models import Membership

    platform_admin.home_tenant = tenant_b
    platform_admin.save()
    with tenant_context(tenant_b):
        Membership.objects.create(user=platform_admin, role="admin")
    response = client_platform.get(url(Workflow, "changelist"))
    assert "Choose a tenant first" in response.content.decode()


def test_create_a_tenant_through_the_admin_is_audited(client_platform):
    response = client_platform.post(
        url(Tenant, "add"), {"slug": "charlie", "name": "Charlie Co", "external_id": ""}
    )
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="charlie")
    assert (tenant.external_id, tenant.status) == ("charlie", "active")
    [event] = events("tenant.create")
    assert (event.actor, event.tenant_slug) == ("root", "charlie")


@pytest.mark.parametrize(
    "data",
    [
        {"slug": "Bad Slug", "name": "X"},
        {"slug": "alpha", "name": "Duplicate"},
        {"slug": "delta", "name": "Dup external", "external_id": "alpha"},
        {"slug": "delta", "name": ""},
    ],
)
def test_bad_tenant_input_is_a_form_error_and_writes_nothing(client_platform, tenant_a, data):
    response = client_platform.post(url(Tenant, "add"), {"external_id": "", **data})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["alpha"]
    assert not events("tenant.create")


def test_edit_a_tenant_is_audited_and_slug_stays(client_platform, tenant_a):
    response = client_platform.post(
        url(Tenant, "change", tenant_a.pk),
        {"name": "Alpha Renamed", "external_id": "alpha-ext", "slug": "hacked"},
    )
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert (tenant_a.slug, tenant_a.name, tenant_a.external_id) == (
        "alpha",
        "Alpha Renamed",
        "alpha-ext",
    )
    [event] = events("tenant.update")
    assert event.details["name"] == {"from": "Alpha Corp", "to": "Alpha Renamed"}


def _act(client, action: str, tenant: Tenant):
    return client.post(
        url(Tenant, "changelist"), {"action": action, "_selected_action": [tenant.pk]}
    )


def test_suspend_refuses_the_tenants_users_at_once_and_reactivate_lets_them_back(
    client_platform, client_admin_a, world, tenant_a
):
    assert client_admin_a.get(url(Workflow, "changelist")).status_code == 200
    assert _act(client_platform, "suspend_tenants", tenant_a).status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.status == "suspended"
    assert events("tenant.suspended")[0].actor == "root"
    refused = client_admin_a.get(url(Workflow, "changelist"))
    assert refused.status_code == 403
    assert "Tenant is not active." in refused.content.decode()
    assert client_admin_a.get("/api/workflows/").status_code == 403
    assert [e.details["code"] for e in events("refused.cross_tenant")] == ["tenant_inactive"] * 2
    with tenant_context(tenant_a):
        assert Workflow.objects.count() == 2  # the data stays intact
    assert _act(client_platform, "reactivate_tenants", tenant_a).status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.status == "active"
    assert client_admin_a.get(url(Workflow, "changelist")).status_code == 200


def test_suspending_twice_is_a_warning_not_an_error(client_platform, tenant_a):
    _act(client_platform, "suspend_tenants", tenant_a)
    response = _act(client_platform, "suspend_tenants", tenant_a)
    assert response.status_code == 302
    assert len(events("tenant.suspended")) == 1


def test_soft_delete_asks_for_confirmation_and_a_reason(client_platform, world, tenant_a):
    page = client_platform.get(url(Tenant, "delete", tenant_a.pk))
    assert page.status_code == 200
    assert "Yes, soft-delete this tenant" in page.content.decode()
    assert (
        client_platform.post(url(Tenant, "delete", tenant_a.pk), {"reason": " "}).status_code == 200
    )
    tenant_a.refresh_from_db()
    assert tenant_a.status == "active"
    done = client_platform.post(url(Tenant, "delete", tenant_a.pk), {"reason": "contract ended"})
    assert done.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.status == "deleted"
    [event] = events("tenant.deleted")
    assert (event.reason, event.actor, event.tenant_slug) == ("contract ended", "root", "alpha")
    with tenant_context(tenant_a):
        assert Workflow.objects.count() == 2


def test_tenants_cannot_be_hard_deleted_from_the_admin(client_platform, tenant_a):
    changelist = client_platform.get(url(Tenant, "changelist"))
    assert "delete_selected" not in changelist.content.decode()
    response = _act(client_platform, "delete_selected", tenant_a)
    assert Tenant.objects.filter(pk=tenant_a.pk).exists()
    assert response.status_code in (200, 302)


def test_the_audit_log_is_read_only(client_platform, tenant_a):
    event = record_event(action="test.event", actor="someone", tenant=tenant_a)
    assert client_platform.get(url(AuditEvent, "add")).status_code == 403
    assert client_platform.get(url(AuditEvent, "change", event.pk)).status_code == 200
    post = client_platform.post(url(AuditEvent, "change", event.pk), {"action": "rewritten"})
    assert post.status_code == 403
    assert client_platform.get(url(AuditEvent, "delete", event.pk)).status_code == 403
    assert (
        client_platform.post(url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code
        == 403
    )
    event.refresh_from_db()
    assert event.action == "test.event"
    changelist = client_platform.get(url(AuditEvent, "changelist")).context
    assert not changelist["has_add_permission"] and changelist["action_form"] is None


def test_the_audit_log_filters_by_tenant_actor_action_time_and_search(
    client_platform, tenant_a, tenant_b
):
    record_event(action="x.one", actor="ann", tenant=tenant_a)
    record_event(action="x.two", actor="bob", tenant=tenant_b)
    now = timezone.now()
    cases = {
        f"?tenant={tenant_a.pk}": {"x.one"},
        "?actor=bob": {"x.two"},
        "?action=x.two": {"x.two"},
        "?q=ann": {"x.one"},
        f"?at__year={now.year}&at__month={now.month}&at__day={now.day}": {"x.one", "x.two"},
        "?at__year=1999": set(),
    }
    for query, expected in cases.items():
        response = client_platform.get(url(AuditEvent, "changelist") + query)
        assert response.status_code == 200, query
        actions = {e.action for e in response.context["cl"].result_list} & {"x.one", "x.two"}
        assert actions == expected, query
    body = client_platform.get(url(AuditEvent, "changelist")).content.decode()
    for title in ("By tenant", "By actor", "By action"):
        assert title in body


def test_platform_admins_manage_users_but_never_delete_them(client_platform, world):
    response = client_platform.get(url(User, "changelist"))
    assert world["b"]["user"] in set(response.context["cl"].result_list)
    assert client_platform.get(url(User, "delete", world["b"]["user"].pk)).status_code == 403
    add = client_platform.post(
        url(User, "add"),
        {"username": "newbie", "password1": "x-Very-long-pw-1", "password2": "x-Very-long-pw-1"},
    )
    assert add.status_code == 302
    assert User.objects.filter(username="newbie").exists()
    assert events("admin.add")[0].details["model"] == "accounts.User"


def test_identity_provider_changes_are_audited_and_the_secret_stays_hidden(client_platform):
    from accounts.models import IdentityProvider

    response = client_platform.post(
        url(IdentityProvider, "add"),
        {
            "name": "Acme realm",
            "kind": "keycloak",
            "enabled": "on",
            "issuer": "https://sso.example.com/realms/acme",
            "audience": "api",
            "tenant_claim": "tenant_id",
            "roles_claim": "",
            "admin_role": "",
            "client_id": "web",
            "client_secret": "hunter2-secret",
            "tenant_bindings-TOTAL_FORMS": "0",
            "tenant_bindings-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    provider = IdentityProvider.objects.get(name="Acme realm")
    assert provider.client_secret == "hunter2-secret"
    [added] = events("admin.add")
    assert added.details["model"] == "accounts.IdentityProvider"
    page = client_platform.get(url(IdentityProvider, "change", provider.pk)).content.decode()
    assert "hunter2-secret" not in page
