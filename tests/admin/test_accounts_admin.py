"""Users and memberships in the admin: the user form shows only what the platform uses, and a
tenant admin made the documented ways (the admin's membership page, the CLI) can enter."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_the_user_form_shows_no_groups_or_permissions(client_platform, world):
    user = world["a"]["user"]
    response = client_platform.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert response.status_code == 200
    fields = set(response.context["adminform"].form.fields)
    assert {"username", "is_active", "is_superuser", "home_tenant"} <= fields
    assert not fields & {"groups", "user_permissions"}
    body = response.content.decode()
    assert 'name="groups"' not in body and 'name="user_permissions"' not in body
    # Saving the form without those fields still works.
    data = {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "home_tenant": user.home_tenant_id,
        "date_joined_0": "2024-01-01",
        "date_joined_1": "00:00:00",
    }
    saved = client_platform.post(reverse("admin:accounts_user_change", args=[user.pk]), data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors


def test_a_tenant_admin_added_in_the_admin_can_enter_it(client_platform, tenant_a):
    """The README's browser path: act as the tenant, add a membership with role admin."""
    carol = User.objects.create_user(username="carol", password="pw")  # no home tenant
    client_platform.post(
        "/admin/act-as/", {"tenant": tenant_a.pk, "reason": "ticket 7: new tenant admin"}
    )
    added = client_platform.post(
        reverse("admin:accounts_membership_add"), {"user": carol.pk, "role": "admin"}
    )
    assert added.status_code == 302
    carol.refresh_from_db()
    assert carol.home_tenant == tenant_a
    assert AuditEvent.objects.filter(action="membership.add", tenant_slug="alpha").exists()

    browser = Client()
    assert browser.post("/accounts/login/", {"username": "carol", "password": "pw"}).status_code
    page = browser.get("/admin/")
    assert page.status_code == 200
    assert "Tenant: <strong>Alpha Corp (alpha)</strong>" in page.content.decode()


def test_a_tenant_admin_made_with_the_cli_signs_in_on_the_admin_login_page(tenant_a, monkeypatch):
    """No is_staff flag: the role in the tenant is what opens the console."""
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    call_command("tenants", "users", "add", "dave", "--password-stdin")
    call_command("tenants", "members", "alpha", "add", "dave", "--role", "admin")

    browser = Client()
    login = browser.post(
        "/admin/login/?next=/admin/",
        {"username": "dave", "password": "a long enough password", "next": "/admin/"},
    )
    assert login.status_code == 302 and login["Location"] == "/admin/"
    page = browser.get("/admin/")
    assert page.status_code == 200
    assert "Tenant: <strong>Alpha Corp (alpha)</strong>" in page.content.decode()


def test_a_member_who_is_not_an_admin_is_still_not_let_in(tenant_a):
    erin = User.objects.create_user(username="erin", password="pw", home_tenant=tenant_a)
    with tenant_context(tenant_a):
        Membership.objects.create(user=erin, role="member")
    browser = Client()
    browser.post("/admin/login/", {"username": "erin", "password": "pw", "next": "/admin/"})
    assert browser.get("/admin/").status_code == 302  # back to the login page
