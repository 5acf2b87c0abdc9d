"""Switching the tenant of a browser session (POST /accounts/tenant/): members only, active
tenants only, never for a provider's session, audited either way, and reachable from the
admin's banner and its refusal page."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.shortcuts import resolve_url
from django.test import Client

from accounts.models import Membership, User
from accounts.oidc import BACKEND_PATH
from accounts.principal import SESSION_TENANT_KEY
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from tests.conftest import make_member

pytestmark = pytest.mark.django_db
SWITCH = "/accounts/tenant/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def two_homes(tenant_a, tenant_b):
    """ann: member of alpha (home) and admin of bravo, signed in with her password."""
    ann = make_member(tenant=tenant_a, username="ann")
    with tenant_context(tenant_b):
        Membership.objects.create(user=ann, role="admin")
    browser = Client()
    assert (
        browser.post("/accounts/login/", {"username": "ann", "password": "pw"}).status_code == 302
    )
    return browser


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def tenant_of(browser: Client) -> str:
    return browser.get("/api/me/").json()["tenant"]["slug"]


def test_a_member_of_two_tenants_switches_between_them(two_homes, tenant_a, tenant_b):
    assert tenant_of(two_homes) == "alpha"
    page = two_homes.get(SWITCH)
    assert page.status_code == 200
    assert "working in <strong>Alpha Corp (alpha)</strong>" in page.content.decode()

    response = two_homes.post(SWITCH, {"tenant": "bravo", "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert two_homes.session[SESSION_TENANT_KEY] == tenant_b.pk
    assert tenant_of(two_homes) == "bravo"
    me = two_homes.get("/api/me/").json()
    assert me["role"] == "admin"
    assert two_homes.get("/admin/").status_code == 200  # admin of bravo, not of alpha
    [event] = events("tenant.switch")
    assert (event.actor, event.tenant_slug) == ("ann", "bravo")
    assert event.details == {"from_tenant_id": tenant_a.pk}

    two_homes.post(SWITCH, {"tenant": "alpha"})
    assert tenant_of(two_homes) == "alpha"
    assert two_homes.get("/admin/").status_code == 302  # a member only, in alpha


def test_unknown_and_foreign_tenants_are_refused_alike_and_audited(two_homes, tenant_a):
    Tenant.objects.create(slug="charlie", external_id="charlie", name="Charlie")
    bodies = []
    for slug in ("charlie", "nosuch"):
        response = two_homes.post(SWITCH, {"tenant": slug})
        assert response.status_code == 403
        body = response.content.decode()
        assert f"You are not a member of a tenant named &#x27;{slug}&#x27;." in body
        bodies.append(
            re.sub(r'name="csrfmiddlewaretoken" value="\w+"', "", body).replace(slug, "S")
        )
    assert bodies[0] == bodies[1]  # nothing tells which tenants exist
    assert SESSION_TENANT_KEY not in two_homes.session
    assert tenant_of(two_homes) == "alpha"
    refusals = events("tenant.switch_refused")
    assert [(e.tenant_slug, e.details) for e in refusals] == [
        ("charlie", {"slug": "charlie", "code": "not_a_member"}),
        ("", {"slug": "nosuch", "code": "not_a_member"}),
    ]
    assert not events("tenant.switch")


def test_an_inactive_tenant_is_refused(two_homes, tenant_b):
    Tenant.objects.filter(pk=tenant_b.pk).update(status="suspended")
    response = two_homes.post(SWITCH, {"tenant": "bravo"})
    assert response.status_code == 403
    assert "Tenant &#x27;bravo&#x27; is suspended." in response.content.decode()
    assert events("tenant.switch_refused")[0].details["code"] == "tenant_inactive"
    assert tenant_of(two_homes) == "alpha"


def test_a_session_of_the_identity_provider_cannot_switch(settings, tenant_a, tenant_b):
    """The provider vouched for one tenant at sign-in; another needs a new sign-in."""
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, BACKEND_PATH]
    olga = make_member(tenant=tenant_a, username="olga")
    with tenant_context(tenant_b):
        Membership.objects.create(user=olga)
    browser = Client()
    browser.force_login(olga, backend=BACKEND_PATH)
    assert browser.session[BACKEND_SESSION_KEY] == BACKEND_PATH
    response = browser.post(SWITCH, {"tenant": "bravo"})
    assert response.status_code == 403
    assert "sign in again" in response.content.decode()
    assert events("tenant.switch_refused")[0].details["code"] == "provider_session"
    assert SESSION_TENANT_KEY not in browser.session


@pytest.mark.parametrize(
    "data",
    [
        "",
        "tenant=",
        "tenant=a%00b",
        "tenant=" + "x" * 64,
        "tenant=bra%ED%A0%80vo",  # a lone surrogate, as UTF-8 bytes
        "tenant=Bravo",
        "tenant=bra%0Avo",
        "tenant=..%2Fbravo",
    ],
)
def test_malformed_input_is_a_400_and_writes_nothing(two_homes, data):
    before = AuditEvent.objects.count()
    response = two_homes.post(SWITCH, data, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert AuditEvent.objects.count() == before
    assert tenant_of(two_homes) == "alpha"


def test_a_redirect_elsewhere_is_not_followed(two_homes):
    response = two_homes.post(SWITCH, {"tenant": "bravo", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == resolve_url(
        settings.LOGIN_REDIRECT_URL
    )


def test_anonymous_callers_are_sent_to_sign_in(client, tenant_a):
    for method in ("get", "post"):
        response = getattr(client, method)(SWITCH, {"tenant": "alpha"})
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    assert not AuditEvent.objects.filter(action__startswith="tenant.switch").exists()


def test_a_removed_member_moves_to_a_tenant_that_still_admits_them(two_homes, tenant_a):
    with tenant_context(tenant_a):
        Membership.objects.filter(user__username="ann").delete()
    refused = two_homes.get("/admin/")
    assert refused.status_code == 403
    assert 'href="/accounts/tenant/' in refused.content.decode()  # the way out
    assert two_homes.get("/api/me/").status_code == 403
    assert two_homes.get(SWITCH).status_code == 200  # /accounts/ enters no tenant
    two_homes.post(SWITCH, {"tenant": "bravo"})
    assert tenant_of(two_homes) == "bravo"


def test_the_admin_banner_links_to_the_switch(two_homes):
    two_homes.post(SWITCH, {"tenant": "bravo"})
    body = two_homes.get("/admin/").content.decode()
    assert 'id="tenant-switch"' in body and "/accounts/tenant/?next=/admin/" in body


def test_a_switched_session_loses_the_tenant_when_the_membership_goes(two_homes, tenant_b):
    two_homes.post(SWITCH, {"tenant": "bravo"})
    assert tenant_of(two_homes) == "bravo"
    with tenant_context(tenant_b):
        Membership.objects.filter(user=User.objects.get(username="ann")).delete()
    assert two_homes.get("/api/me/").status_code == 403
