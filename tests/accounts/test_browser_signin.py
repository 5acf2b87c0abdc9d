"""Browser sign-in through mozilla-django-oidc (authorization code + PKCE) against the real test
IdP, Keycloak-like and Auth0-like, with a live server and an HTTP client that fills the IdP's
login form like a person would."""

from __future__ import annotations

import html
import re
import urllib.parse

import pytest
import requests

from accounts.models import Membership, User
from tenants.context import tenant_context

# Committed data: the live server answers from its own thread and connection; the flush at the
# end runs as the owner (the runtime role has no TRUNCATE).
pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "owner"]),
    pytest.mark.idp,
]

NAMESPACE = "https://ameide.example/"
CLAIMS = {
    "keycloak": ("tenant_id", "realm_access.roles"),
    "auth0": (f"{NAMESPACE}tenant_id", f"{NAMESPACE}roles"),
}


@pytest.fixture(params=["keycloak", "auth0"])
def browser_idp(request, settings):
    """One of the two IdPs as the environment's provider, with browser sign-in configured."""
    idp = request.getfixturevalue(f"{request.param}_idp")
    tenant_claim, roles_claim = CLAIMS[request.param]
    settings.OIDC_PROVIDER = request.param
    settings.OIDC_ISSUER = idp.issuer
    settings.OIDC_AUDIENCE = ["ameide-api"]
    settings.OIDC_TENANT_CLAIM = tenant_claim
    settings.OIDC_ROLES_CLAIM = roles_claim
    settings.OIDC_ADMIN_ROLE = "tenant-admin"
    settings.OIDC_RP_CLIENT_ID = "ameide"
    settings.OIDC_RP_CLIENT_SECRET = "ameide-secret"
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "accounts.oidc.TenantOIDCBackend",
    ]
    return idp


def _form_action(page: requests.Response) -> str:
    match = re.search(r'<form[^>]*id="login-form"[^>]*action="([^"]+)"', page.text)
    assert match, page.text
    return urllib.parse.urljoin(page.url, html.unescape(match.group(1)))


def sign_in(browser: requests.Session, live_server, idp, login: str) -> requests.Response:
    """Login page -> "Sign in with ..." -> the IdP's form -> back to the app."""
    page = browser.get(f"{live_server.url}/accounts/login/?next=/api/me/", timeout=10)
    assert page.status_code == 200
    link = re.search(r'id="sign-in-oidc"\s+href="([^"]+)"', page.text)
    assert link, page.text
    start = browser.get(
        urllib.parse.urljoin(page.url, html.unescape(link.group(1))),
        allow_redirects=False,
        timeout=10,
    )
    assert start.status_code == 302
    authorize = urllib.parse.urlsplit(start.headers["Location"])
    params = urllib.parse.parse_qs(authorize.query)
    assert authorize.geturl().startswith(idp.info["authorization_endpoint"])
    assert params["code_challenge_method"] == ["S256"] and len(params["code_challenge"][0]) == 43
    assert params["response_type"] == ["code"] and params["state"] and params["nonce"]
    form = browser.get(start.headers["Location"], timeout=10)
    assert form.status_code == 200 and 'id="login-form"' in form.text
    return browser.post(_form_action(form), data={"login": login, "password": "x"}, timeout=10)


def test_code_flow_with_pkce_provisions_and_signs_in(browser_idp, live_server, tenant_a):
    sub = f"{browser_idp.mode}-bea"
    browser_idp.add_users(
        browser_idp.user(sub, tenant="alpha", name="Bea Browser", roles=["tenant-admin"])
    )
    browser = requests.Session()
    with browser:
        landed = sign_in(browser, live_server, browser_idp, sub)

        assert landed.url == f"{live_server.url}/api/me/"
        assert landed.status_code == 200, landed.text
        me = landed.json()
        assert me["tenant"]["slug"] == "alpha" and me["role"] == "admin"
        user = User.objects.get(issuer=browser_idp.issuer, subject=sub)
        assert (user.first_name, user.last_name, user.email) == (
            "Bea",
            "Browser",
            f"{sub}@example.com",
        )
        assert me["user"]["id"] == user.pk
        with tenant_context(tenant_a):
            assert Membership.objects.get(user=user).role == Membership.Role.ADMIN

        # The session keeps working without the IdP, and logout ends it at the IdP too.
        browser_idp.reset_stats()
        assert browser.get(f"{live_server.url}/api/workflows/", timeout=10).status_code == 200
        assert browser_idp.stats()["total"] == 0
        logout = browser.post(
            f"{live_server.url}/oidc/logout/",
            headers={"X-CSRFToken": browser.cookies["csrftoken"]},
            allow_redirects=False,
            timeout=10,
        )
        assert logout.status_code == 302
        target = urllib.parse.urlsplit(logout.headers["Location"])
        assert logout.headers["Location"].startswith(browser_idp.info["end_session_endpoint"])
        query = urllib.parse.parse_qs(target.query)
        assert query["post_logout_redirect_uri"] == [f"{live_server.url}/accounts/login/"]
        assert query["id_token_hint"]
        assert browser.get(f"{live_server.url}/api/me/", timeout=10).status_code == 401


def test_sign_in_with_a_tenant_the_user_may_not_enter_is_refused(browser_idp, live_server):
    sub = f"{browser_idp.mode}-nobody"
    browser_idp.add_users(browser_idp.user(sub, tenant="no-such-tenant"))
    with requests.Session() as browser:
        landed = sign_in(browser, live_server, browser_idp, sub)

        assert landed.url.startswith(f"{live_server.url}/accounts/login/")
        assert "Sign-in refused: Unknown tenant." in landed.text
        assert browser.get(f"{live_server.url}/api/me/", timeout=10).status_code == 401
    assert not User.objects.filter(subject=sub).exists()


def test_a_member_removed_after_sign_in_loses_the_session_at_the_next_request(
    browser_idp, live_server, tenant_a
):
    sub = f"{browser_idp.mode}-removed"
    browser_idp.add_users(browser_idp.user(sub, tenant="alpha"))
    with requests.Session() as browser:
        assert sign_in(browser, live_server, browser_idp, sub).status_code == 200
        with tenant_context(tenant_a):
            Membership.objects.filter(user__subject=sub).delete()

        me = browser.get(f"{live_server.url}/api/me/", timeout=10)
        post = browser.post(
            f"{live_server.url}/api/workflows/",
            json={"name": "x"},
            headers={"X-CSRFToken": browser.cookies["csrftoken"]},
            timeout=10,
        )
        # The sign-in pages stay reachable, so the person can sign out or in again.
        login_page = browser.get(f"{live_server.url}/accounts/login/", timeout=10)

    assert me.status_code == 403 and me.json()["code"] == "not_a_member"
    assert post.status_code == 403
    assert login_page.status_code == 200
