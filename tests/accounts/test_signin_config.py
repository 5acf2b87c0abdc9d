"""Sign-in configuration: issuer URL rules, provider defaults, refusals at start-up and at save
time, the provider cache, usernames of provisioned users, and the login page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from accounts.conf import check_issuer_url, claim_defaults
from accounts.errors import InsecureIssuer
from accounts.models import IdentityProvider, IdentityProviderTenant, Membership
from accounts.providers import ProviderRegistry
from accounts.services import username_for
from tenants.context import tenant_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "url",
    [
        "https://sso.example.com/realms/acme",
        "https://tenant.eu.auth0.com/",
        "http://127.0.0.1:8000/dev-issuer",
        "http://127.8.9.10/",
        "http://localhost:8080/realms/x",
        "http://[::1]:9000",
    ],
)
def test_issuers_that_may_be_trusted(url):
    assert check_issuer_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://sso.example.com/realms/acme",
        "http://10.0.0.5/",
        "http://0.0.0.0:8000/",
        "http://localhost.example.com/",
        "http://127.0.0.1.nip.io/",
        "ftp://127.0.0.1/",
        "https://user:pw@sso.example.com/",
        "https://sso.example.com/?x=1",
        "sso.example.com",
        "",
    ],
)
def test_issuers_that_are_refused(url):
    with pytest.raises(InsecureIssuer):
        check_issuer_url(url)


def test_provider_claim_defaults():
    assert claim_defaults(provider="keycloak") == {
        "tenant_claim": "tenant_id",
        "roles_claim": "realm_access.roles",
        "admin_role": "tenant-admin",
    }
    assert claim_defaults(provider="auth0", namespace="ameide.example") == {
        "tenant_claim": "https://ameide.example/tenant_id",
        "roles_claim": "https://ameide.example/roles",
        "admin_role": "tenant-admin",
    }
    organizations = claim_defaults(provider="auth0", organizations=True)
    assert organizations["tenant_claim"] == "org_id"
    assert claim_defaults(provider="generic")["tenant_claim"] == "tenant_id"
    with pytest.raises(ValueError):
        claim_defaults(provider="auth0")  # neither a namespace nor organizations
    with pytest.raises(ValueError):
        claim_defaults(provider="okta")


def _start_settings(**env: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OIDC_", "DEV_ISSUER_", "DEBUG"))
    }
    # Set, even if empty, so that a developer's .env cannot fill them in (env wins over .env).
    neutral = {
        "OIDC_PROVIDER": "generic",
        "OIDC_ISSUER": "",
        "OIDC_AUDIENCE": "",
        "DEV_ISSUER_ENABLED": "false",
        "DEV_ISSUER_URL": "http://127.0.0.1:8000/dev-issuer",
    }
    environment.update({"SECRET_KEY": "test", "DEBUG": "true", **neutral, **env})
    return subprocess.run(
        [sys.executable, "-c", "import ameide.settings"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DEV_ISSUER_ENABLED": "true", "DEBUG": "false"}, "refused with DEBUG off"),
        (
            {"DEV_ISSUER_ENABLED": "true", "DEV_ISSUER_URL": "http://dev.example.com/dev-issuer"},
            "plain-http issuer",
        ),
        ({"OIDC_ISSUER": "http://sso.example.com", "OIDC_AUDIENCE": "api"}, "plain-http issuer"),
        ({"OIDC_ISSUER": "https://sso.example.com"}, "needs OIDC_AUDIENCE"),
        ({"OIDC_PROVIDER": "okta"}, "OIDC_PROVIDER must be one of"),
    ],
    ids=["dev-issuer-without-debug", "dev-issuer-http", "http-issuer", "no-audience", "kind"],
)
def test_settings_refuse_unsafe_configuration_at_start(env, message):
    result = _start_settings(**env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_settings_accept_a_loopback_issuer_and_the_dev_issuer_with_debug():
    result = _start_settings(
        OIDC_ISSUER="http://127.0.0.1:8080/realms/ameide",
        OIDC_AUDIENCE="ameide-api",
        DEV_ISSUER_ENABLED="true",
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("issuer", ["http://sso.example.com/realms/x", "http://10.1.2.3/"])
def test_database_provider_with_plain_http_issuer_cannot_be_saved(issuer):
    with pytest.raises(ValidationError):
        IdentityProvider.objects.create(name="x", issuer=issuer, audience="api")
    assert not IdentityProvider.objects.exists()


@pytest.mark.django_db
def test_database_provider_cannot_shadow_the_environment_provider(settings):
    settings.OIDC_ISSUER = "https://sso.example.com/realms/platform"
    provider = IdentityProvider(name="x", issuer=settings.OIDC_ISSUER, audience="api")

    with pytest.raises(ValidationError, match="platform-wide provider"):
        provider.full_clean()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.django_db
def test_database_providers_are_read_once_per_interval_and_again_after_a_change(
    settings, tenant_a, django_assert_num_queries
):
    settings.OIDC_PROVIDER_CACHE_SECONDS = 30
    clock = FakeClock()
    registry = ProviderRegistry(clock=clock)
    provider = IdentityProvider.objects.create(
        name="acme", issuer="https://sso.acme.example", audience="api"
    )
    IdentityProviderTenant.objects.create(provider=provider, tenant=tenant_a)

    with django_assert_num_queries(2):
        policy = registry.policy_for("https://sso.acme.example")
    with django_assert_num_queries(0):
        for _ in range(50):
            assert registry.policy_for("https://sso.acme.example") is policy
            assert registry.policy_for("https://unknown.example") is None
    assert policy.may_assert(tenant_a) and policy.tenant_ids == {tenant_a.pk}

    clock.now += 31
    with django_assert_num_queries(2):
        registry.policy_for("https://sso.acme.example")
    registry.invalidate()  # what a save in this process does (signals)
    provider.enabled = False
    provider.save()
    assert registry.policy_for("https://sso.acme.example") is None


def test_usernames_are_stable_readable_and_apart_per_issuer():
    claims = {"preferred_username": "ada lovelace/../admin", "email": "ada@example.com"}
    one = username_for(issuer="https://a.example", subject="42", claims=claims)

    assert one == username_for(issuer="https://a.example", subject="42", claims=claims)
    assert one.startswith("ada-lovelace-..-admin-") and len(one) <= 150
    assert one != username_for(issuer="https://b.example", subject="42", claims=claims)
    assert username_for(issuer="i", subject="s", claims={"email": "bo@x.y"}).startswith("bo-")
    assert username_for(issuer="i", subject="s", claims={}).startswith("user-")
    # A provider cannot take the name of a local account.
    assert username_for(issuer="i", subject="s", claims={"preferred_username": "admin"}) != "admin"


@pytest.mark.django_db
def test_login_page_offers_the_provider_only_when_configured(client, settings):
    plain = client.get("/accounts/login/")
    settings.OIDC_ISSUER = "https://sso.example.com/realms/acme"
    settings.OIDC_PROVIDER = "keycloak"
    settings.OIDC_RP_CLIENT_ID = "ameide"
    with_oidc = client.get("/accounts/login/")

    assert plain.status_code == 200 and "sign-in-oidc" not in plain.content.decode()
    assert 'name="password"' in plain.content.decode()
    assert "Sign in with Keycloak" in with_oidc.content.decode()


@pytest.mark.django_db
def test_oidc_endpoints_are_404_when_browser_sign_in_is_not_configured(client):
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


@pytest.mark.django_db
def test_local_password_sign_in_enters_the_home_tenant(client, user_a, tenant_a):
    response = client.post("/accounts/login/", {"username": "ann", "password": "pw"})

    assert response.status_code == 302
    me = client.get("/api/me/")
    assert me.status_code == 200 and me.json()["tenant"]["slug"] == "alpha"


@pytest.mark.django_db
def test_a_removed_member_can_still_reach_the_sign_in_pages(client_a, user_a, tenant_a):
    with tenant_context(tenant_a):
        Membership.objects.filter(user=user_a).delete()

    assert client_a.get("/api/me/").status_code == 403
    assert client_a.get("/accounts/login/").status_code == 200
    assert client_a.post("/accounts/logout/").status_code == 302
    assert client_a.get("/api/me/").status_code == 401
