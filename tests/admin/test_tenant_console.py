"""The tenant console, for every registered admin of a tenant model: a tenant admin of A never
sees B (change lists, search, filters, autocomplete, pop-ups, form choices, delete pages,
history), B's objects answer like missing ones, and no admin POST writes anything of B."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms import ModelChoiceField
from django.urls import reverse

from accounts.models import Membership, User
from tenants.admin_site import TenantModelAdmin, model_admins_of_tenant_models
from tenants.context import tenant_context
from tenants.exceptions import TenantNotSet
from tests.admin.support import SECRET, snapshot_all
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db
MISSING_ID = 987654321
TENANT_ADMINS = model_admins_of_tenant_models(admin.site)
# Which fixture object each tenant model's pages are tried on (tests fail for a new model).
OBJECT_KEY = {Workflow: "workflow", WorkflowRun: "run", Membership: "membership"}
MODELS = sorted(TENANT_ADMINS, key=lambda model: model._meta.label)
FOREIGN_KEYS = sorted(
    (model._meta.app_label, model._meta.model_name, field.name)
    for model in admin.site._registry
    for field in model._meta.get_fields()
    if field.many_to_one and field.concrete
)


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def assert_no_trace_of_b(response) -> str:
    body = response.content.decode()
    for needle in (SECRET, "Bravo Ltd", "bravo"):
        assert needle not in body, f"{needle!r} on {response.request['PATH_INFO']}"
    return body


def test_every_tenant_model_admin_is_a_tenant_model_admin_and_is_covered():
    assert set(TENANT_ADMINS) == set(OBJECT_KEY)
    for model, model_admin in TENANT_ADMINS.items():
        assert isinstance(model_admin, TenantModelAdmin), model
        for inline in model_admin.inlines:
            assert hasattr(inline, "scope_related_queryset"), inline


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_changelist_search_and_counts_show_only_a(client_admin_a, world, model):
    response = client_admin_a.get(url(model, "changelist"))
    assert response.status_code == 200
    body = assert_no_trace_of_b(response)
    with tenant_context(world["a"]["workflow"].tenant):
        expected = model.objects.count()
    cl = response.context["cl"]
    assert cl.result_count == expected and cl.full_result_count == expected
    assert f"{expected} {model._meta.verbose_name_plural}" in body or expected == 1
    for term in ("SECRET", "secret", "ravo"):
        found = client_admin_a.get(url(model, "changelist"), {"q": term})
        assert found.status_code == 200
        assert_no_trace_of_b(found)
        assert found.context["cl"].result_count == 0


def test_workflow_counts_and_search_find_a(client_admin_a, world):
    response = client_admin_a.get(url(Workflow, "changelist"), {"q": "alpha-flow"})
    assert response.context["cl"].result_count == 1
    row = response.context["cl"].result_list[0]
    assert row.run_count == 1  # the join to runs counts this tenant's runs only
    assert "2 workflows" in client_admin_a.get(url(Workflow, "changelist")).content.decode()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_every_list_filter_choice_shows_only_a(client_admin_a, world, model):
    response = client_admin_a.get(url(model, "changelist"))
    cl = response.context["cl"]
    assert cl.filter_specs, f"{model} has no list filters to check"
    tried = 0
    for spec in cl.filter_specs:
        for choice in spec.choices(cl):
            filtered = client_admin_a.get(url(model, "changelist") + choice["query_string"])
            assert filtered.status_code == 200, choice
            assert_no_trace_of_b(filtered)
            tried += 1
    assert tried >= len(cl.filter_specs) * 2


@pytest.mark.parametrize(
    "model,param,key",
    [
        (Workflow, "owner__id__exact", "user"),
        (WorkflowRun, "workflow__id__exact", "workflow"),
    ],
)
def test_filtering_by_bs_related_object_finds_nothing(client_admin_a, world, model, param, key):
    response = client_admin_a.get(url(model, "changelist"), {param: world["b"][key].pk})
    assert response.status_code == 200
    assert_no_trace_of_b(response)
    assert response.context["cl"].result_count == 0


def test_related_filter_choices_are_scoped(client_admin_a, world):
    """RelatedFieldListFilter (a key to a tenant model) and the owner filter (a key to the
    global user table, narrowed to users this tenant's rows use) list only A's objects."""
    runs = client_admin_a.get(url(WorkflowRun, "changelist")).context["cl"]
    workflow_filter = next(s for s in runs.filter_specs if s.field_path == "workflow")
    assert {pk for pk, _ in workflow_filter.lookup_choices} == {world["a"]["workflow"].pk} | {
        world["a"]["workflow2"].pk
    }
    flows = client_admin_a.get(url(Workflow, "changelist")).context["cl"]
    owner_filter = next(s for s in flows.filter_specs if s.field_path == "owner")
    assert {pk for pk, _ in owner_filter.lookup_choices} == {
        world["a"]["workflow"].owner_id,
        world["a"]["user"].pk,
    }


@pytest.mark.parametrize("app_label,model_name,field_name", FOREIGN_KEYS)
def test_autocomplete_of_every_foreign_key_shows_only_a(
    client_admin_a, world, app_label, model_name, field_name
):
    endpoint = reverse("admin:autocomplete")
    params = {"app_label": app_label, "model_name": model_name, "field_name": field_name}
    for term in ("", "SECRET", "a"):
        response = client_admin_a.get(endpoint, {**params, "term": term})
        assert response.status_code in (200, 403, 404), response.status_code
        assert_no_trace_of_b(response)
        if response.status_code == 200:
            ids = {int(item["id"]) for item in json.loads(response.content)["results"]}
            remote = _remote_model(app_label, model_name, field_name)
            assert not ids & {obj.pk for obj in world["b"].values() if isinstance(obj, remote)}


def _remote_model(app_label, model_name, field_name):
    from django.apps import apps

    return apps.get_model(app_label, model_name)._meta.get_field(field_name).related_model


def test_autocomplete_of_workflow_owner_lists_only_as_members(client_admin_a, world, admin_a):
    response = client_admin_a.get(
        reverse("admin:autocomplete"),
        {"app_label": "workflows", "model_name": "workflow", "field_name": "owner"},
    )
    ids = {int(item["id"]) for item in json.loads(response.content)["results"]}
    assert ids == {admin_a.pk, world["a"]["user"].pk}


@pytest.mark.parametrize("model", [*MODELS, User], ids=lambda m: m._meta.label)
def test_raw_id_popups_show_only_a(client_admin_a, world, model):
    response = client_admin_a.get(url(model, "changelist"), {"_popup": "1", "_to_field": "id"})
    assert response.status_code == 200
    body = assert_no_trace_of_b(response)
    assert "Tenant: " in body and "Alpha Corp" in body  # the banner is on pop-ups too


def test_the_raw_id_widget_of_a_run_points_to_a_popup_of_workflows(client_admin_a, world):
    response = client_admin_a.get(url(WorkflowRun, "change", world["a"]["run"].pk))
    body = assert_no_trace_of_b(response)
    assert "vForeignKeyRawIdAdminField" in body and "alpha-flow" in body


def _form_querysets(response, tenant) -> dict:
    """The choices of the rendered form's related fields, evaluated as the form would be."""
    form = response.context["adminform"].form
    with tenant_context(tenant):
        return {
            name: {choice.instance for choice, _ in list(field.choices)[1:]}
            for name, field in form.fields.items()
            if isinstance(field, ModelChoiceField)
        }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_add_and_change_forms_offer_only_a(client_admin_a, world, model):
    b_objects = set(world["b"].values())
    a_obj = world["a"][OBJECT_KEY[model]]
    change = client_admin_a.get(url(model, "change", a_obj.pk))
    assert change.status_code == 200
    assert_no_trace_of_b(change)
    for choices in _form_querysets(change, a_obj.tenant).values():
        assert not choices & b_objects
    add = client_admin_a.get(url(model, "add"))
    if model is Membership:
        assert add.status_code == 403  # members arrive by signing in
        return
    assert add.status_code == 200
    assert_no_trace_of_b(add)
    querysets = _form_querysets(add, a_obj.tenant)
    assert querysets, f"{model} add form has no related choices to check"
    for choices in querysets.values():
        assert not choices & b_objects


def test_model_choice_querysets_resolve_the_tenant_when_evaluated(world):
    """A ModelChoiceField built with no tenant (as at import time) lists the tenant of
    whoever evaluates it: the manager's filter is resolved when the SQL is compiled."""
    field = ModelChoiceField(queryset=Workflow.objects.all())
    a, b = world["a"]["workflow"], world["b"]["workflow"]
    with tenant_context(a.tenant):
        assert {c.instance for c, _ in list(field.choices)[1:]} == {a, world["a"]["workflow2"]}
        assert field.clean(str(a.pk)) == a
        with pytest.raises(ValidationError, match="valid choice"):
            field.clean(str(b.pk))
    with tenant_context(b.tenant):
        assert {c.instance for c, _ in list(field.choices)[1:]} == {b}
        assert field.clean(str(b.pk)) == b
    with pytest.raises(TenantNotSet):
        list(field.choices)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_delete_confirmation_and_history_show_only_a(client_admin_a, world, model):
    a_obj = world["a"][OBJECT_KEY[model]]
    before = snapshot_all()
    delete = client_admin_a.get(url(model, "delete", a_obj.pk))
    assert delete.status_code == 200
    assert_no_trace_of_b(delete)
    history = client_admin_a.get(url(model, "history", a_obj.pk))
    assert history.status_code == 200
    assert_no_trace_of_b(history)
    assert snapshot_all() == before


def test_workflow_delete_page_lists_its_own_runs(client_admin_a, world):
    body = client_admin_a.get(url(Workflow, "delete", world["a"]["workflow"].pk)).content.decode()
    assert str(world["a"]["run"]) in body


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.parametrize("view", ["change", "delete", "history"])
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_bs_object_answers_like_a_missing_one(client_admin_a, world, model, view):
    b_obj = world["b"][OBJECT_KEY[model]]
    before = snapshot_all()
    answers = []
    for pk in (b_obj.pk, MISSING_ID):
        for method in ("get", "post"):
            response = getattr(client_admin_a, method)(url(model, view, pk), {"post": "yes"})
            followed = (
                client_admin_a.get(response["Location"]) if response.status_code == 302 else None
            )
            text = [m.replace(str(pk), "<id>") for m in _messages(followed)] if followed else []
            answers.append((method, response.status_code, response.get("Location"), text))
            if followed is not None:
                assert_no_trace_of_b(followed)
    b_answers, missing_answers = answers[:2], answers[2:]
    assert b_answers == missing_answers
    assert b_answers[0][1] == 302 and "doesn" in b_answers[0][3][0]
    assert snapshot_all() == before


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label)
def test_bulk_delete_of_bs_objects_deletes_nothing(client_admin_a, world, model):
    before = snapshot_all()
    b_obj = world["b"][OBJECT_KEY[model]]
    response = client_admin_a.post(
        url(model, "changelist"),
        {"action": "delete_selected", "_selected_action": [b_obj.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert snapshot_all() == before


def test_adding_a_run_of_bs_workflow_is_refused(client_admin_a, world):
    before = snapshot_all()
    response = client_admin_a.post(
        url(WorkflowRun, "add"),
        {"workflow": world["b"]["workflow"].pk, "status": "queued", "input": "{}", "output": "{}"},
    )
    assert response.status_code == 200
    assert "workflow" in response.context["adminform"].form.errors
    assert_no_trace_of_b(response)
    assert snapshot_all() == before


def test_a_workflow_owned_by_bs_user_is_refused(client_admin_a, world):
    before = snapshot_all()
    data = {
        "name": "new-flow",
        "description": "",
        "definition": "{}",
        "status": "draft",
        "owner": world["b"]["user"].pk,
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
    }
    response = client_admin_a.post(url(Workflow, "add"), data)
    assert response.status_code == 200
    assert "owner" in response.context["adminform"].form.errors
    assert snapshot_all() == before
    data["owner"] = world["a"]["user"].pk
    response = client_admin_a.post(url(Workflow, "add"), data)
    assert response.status_code == 302
    with tenant_context(world["a"]["workflow"].tenant):
        created = Workflow.objects.get(name="new-flow")
    assert created.tenant_id == world["a"]["workflow"].tenant_id


def test_a_duplicate_name_is_a_form_error_not_a_500(client_admin_a, world):
    data = {
        "name": "alpha-flow",
        "definition": "{}",
        "status": "draft",
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
    }
    response = client_admin_a.post(url(Workflow, "add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    # B's name is free in A: uniqueness is per tenant, and B's row is not even seen.
    data["name"] = f"{SECRET}-workflow"
    assert client_admin_a.post(url(Workflow, "add"), data).status_code == 302


def test_a_tenant_admin_changes_a_role_in_a(client_admin_a, world):
    membership = world["a"]["membership"]
    response = client_admin_a.post(url(Membership, "change", membership.pk), {"role": "admin"})
    assert response.status_code == 302
    with tenant_context(membership.tenant):
        membership.refresh_from_db()
    assert membership.role == "admin"


def test_users_pages_show_only_as_members_read_only(client_admin_a, world, admin_a):
    response = client_admin_a.get(url(User, "changelist"))
    assert response.status_code == 200
    assert_no_trace_of_b(response)
    assert set(response.context["cl"].result_list) == {admin_a, world["a"]["user"]}
    user_b = world["b"]["user"]
    missing = client_admin_a.get(url(User, "change", user_b.pk))
    assert missing.status_code == 302
    member = client_admin_a.get(url(User, "change", world["a"]["user"].pk))
    assert member.status_code == 200 and "home_tenant" not in member.content.decode()
    before = snapshot_all()
    client_admin_a.post(url(User, "change", world["a"]["user"].pk), {"username": "renamed"})
    client_admin_a.post(
        reverse("admin:auth_user_password_change", args=[world["a"]["user"].pk]), {"password1": "x"}
    )
    assert snapshot_all() == before


PLATFORM_ONLY = [
    "/admin/tenants/tenant/",
    "/admin/tenants/tenant/add/",
    "/admin/accounts/identityprovider/",
    "/admin/accounts/identityprovidertenant/",
    "/admin/act-as/",
]


@pytest.mark.parametrize("path", PLATFORM_ONLY)
def test_platform_pages_are_refused_to_a_tenant_admin(client_admin_a, world, path):
    assert client_admin_a.get(path).status_code == 403


def test_the_index_shows_a_tenant_admin_only_tenant_models_and_the_banner(client_admin_a, world):
    response = client_admin_a.get(reverse("admin:index"))
    body = assert_no_trace_of_b(response)
    shown = {m["object_name"] for app in response.context["app_list"] for m in app["models"]}
    # The tenant models, their own tenant's limits and usage (limits.admin) and their own
    # tenant's audit events (tests/admin/test_audit_console.py).
    assert shown == {"Workflow", "WorkflowRun", "Membership", "User", "TenantLimits", "AuditEvent"}
    assert re.search(r"Tenant: <strong>Alpha Corp \(alpha\)</strong>", body)
    # The tenants app shows them its audit log only, never the tenants.
    app_index = client_admin_a.get("/admin/tenants/")
    assert app_index.status_code == 200
    assert [m["object_name"] for m in app_index.context["app_list"][0]["models"]] == ["AuditEvent"]


def test_a_plain_member_cannot_enter_but_the_admin_role_suffices(world, tenant_a):
    from django.test import Client

    from tests.conftest import make_member

    # is_staff does not open the console; the admin role in the tenant does (OIDC-provisioned
    # tenant admins are not staff).
    member = make_member(tenant=tenant_a, username="staff-member")
    member.is_staff = True
    member.save()
    client = Client()
    client.force_login(member)
    response = client.get(url(Workflow, "changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    not_staff = make_member(tenant=tenant_a, username="admin-not-staff", role="admin")
    client = Client()
    client.force_login(not_staff)
    assert client.get(url(Workflow, "changelist")).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "home_tenant__id__exact=1",
        "issuer__startswith=https",
        "is_staff__exact=1",
        "email__icontains=a",
    ],
)
def test_a_tenant_admin_filters_users_only_by_what_the_list_shows(client_admin_a, world, query):
    """THREATS 20: a filter on a hidden field would tell a tenant admin about other tenants."""
    assert client_admin_a.get(f"/admin/accounts/user/?{query}").status_code == 400
    assert client_admin_a.get("/admin/accounts/user/?is_active__exact=1").status_code == 200
