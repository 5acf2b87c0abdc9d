"""Bearer tokens through the API, signed by a real OpenID provider (tests/idp) on 127.0.0.1.

Covers THREATS 21-28: local verification with zero provider calls per request, the token
matrix (401 + WWW-Authenticate, no request caused by the token), the tenant claim shapes
(403, never a default tenant), key rotation, the JWKS endpoint down, provider bindings,
provisioning keyed by (issuer, subject), mixed credentials and removed members.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.test.utils import CaptureQueriesContext
from jwt.algorithms import RSAAlgorithm
from rest_framework.test import APIClient

from accounts import providers
from accounts.models import IdentityProvider, IdentityProviderTenant, Membership, User
from tenants.context import tenant_context, unscoped
from tenants.models import AuditEvent, Tenant
from workflows.models import Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.idp]

AUDIENCE = "ameide-api"
NAMESPACE = "https://ameide.example/"


def call(token: str, path: str = "/api/me/", method: str = "get", client=None, **kwargs):
    client = client or APIClient()
    return getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {token}", **kwargs)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    return unb64(header), unb64(payload)


def forge(header: dict, claims: dict, sign=lambda data: b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def users_named(sub: str) -> int:
    return User.objects.filter(subject=sub).count()


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def alpha(tenant_a) -> Tenant:
    return tenant_a


@pytest.fixture
def bravo(tenant_b) -> Tenant:
    return tenant_b


@pytest.fixture
def warm(keycloak_env, alpha):
    """A verified request has loaded the IdP's keys; the IdP's counters start at zero."""
    keycloak_env.add_users(keycloak_env.user("warm-up"))
    token = keycloak_env.access_token("warm-up")
    assert call(token).status_code == 200
    keycloak_env.reset_stats()
    return token


# --- the happy path and provisioning (THREATS 21, 27) -----------------------------------------


def test_first_token_provisions_user_and_membership_from_claims(keycloak_env, alpha):
    keycloak_env.add_users(
        keycloak_env.user(
            "kc-ada", name="Ada Lovelace", email="ada@alpha.example", preferred_username="ada"
        )
    )
    token = keycloak_env.access_token("kc-ada")

    response = call(token)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tenant"]["slug"] == "alpha" and body["role"] == "member"
    user = User.objects.get(issuer=keycloak_env.issuer, subject="kc-ada")
    assert (user.first_name, user.last_name, user.email) == ("Ada", "Lovelace", "ada@alpha.example")
    assert user.username.startswith("ada-") and not user.has_usable_password()
    assert body["user"]["username"] == user.username
    with tenant_context(alpha):
        assert Membership.objects.get(user=user).role == Membership.Role.MEMBER
    with unscoped(reason="test: provisioning is audited"):
        event = AuditEvent.objects.get(action="user.provisioned")
    assert event.tenant_id_value == alpha.pk and event.details["subject"] == "kc-ada"
    # The second call finds the same account.
    assert call(token).json()["user"]["id"] == user.pk
    assert User.objects.filter(subject="kc-ada").count() == 1


def test_admin_role_comes_from_the_keycloak_realm_role(keycloak_env, alpha):
    keycloak_env.add_users(keycloak_env.user("kc-boss", roles=["tenant-admin", "other"]))

    response = call(keycloak_env.access_token("kc-boss"))

    assert response.status_code == 200 and response.json()["role"] == "admin"


def test_writes_with_a_token_land_in_the_token_tenant(keycloak_env, alpha, bravo):
    keycloak_env.add_users(keycloak_env.user("kc-writer"))
    token = keycloak_env.access_token("kc-writer")

    response = call(token, "/api/workflows/", "post", data={"name": "From a token"}, format="json")

    assert response.status_code == 201, response.content
    with tenant_context(alpha):
        assert list(Workflow.objects.values_list("name", flat=True)) == ["From a token"]
    with tenant_context(bravo):
        assert not Workflow.objects.exists()


def test_zero_provider_calls_and_no_provider_queries_in_steady_state(keycloak_env, warm):
    loads = providers.registry.loads
    for _ in range(100):
        assert call(warm).status_code == 200
        assert call(warm, "/api/workflows/").status_code == 200

    assert keycloak_env.stats()["total"] == 0
    assert providers.registry.loads == loads
    with CaptureQueriesContext(connection) as queries:
        assert call(warm).status_code == 200
    assert not [q for q in queries.captured_queries if "identityprovider" in q["sql"]]


# --- THREATS 22: the token matrix -------------------------------------------------------------


def _public_pem(idp) -> bytes:
    key = RSAAlgorithm.from_jwk(json.dumps(idp.public_jwks()[0]))
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _rsa_signer(key):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


TOKEN_MATRIX = {
    "alg none": lambda t, idp, key: forge({**parts(t)[0], "alg": "none"}, parts(t)[1]),
    "alg none, no signature part": lambda t, idp, key: forge(
        {"alg": "none", "kid": parts(t)[0]["kid"]}, parts(t)[1]
    ).rstrip("."),
    "HS256 keyed with the public key": lambda t, idp, key: forge(
        {**parts(t)[0], "alg": "HS256"},
        parts(t)[1],
        lambda data: hmac.new(_public_pem(idp), data, hashlib.sha256).digest(),
    ),
    "signed by another key under the IdP's kid": lambda t, idp, key: forge(
        parts(t)[0], parts(t)[1], _rsa_signer(key)
    ),
    "claims changed after signing": lambda t, idp, key: ".".join(
        [
            t.split(".")[0],
            b64(json.dumps({**parts(t)[1], "tenant_id": "bravo"}).encode()),
            t.split(".")[2],
        ]
    ),
    "missing kid": lambda t, idp, key: forge(
        {k: v for k, v in parts(t)[0].items() if k != "kid"}, parts(t)[1], _rsa_signer(key)
    ),
    "unknown kid": lambda t, idp, key: forge(
        {**parts(t)[0], "kid": "not-a-known-kid"}, parts(t)[1], _rsa_signer(key)
    ),
    "jku header": lambda t, idp, key: forge(
        {**parts(t)[0], "jku": "http://127.0.0.1:9/jwks"}, parts(t)[1], _rsa_signer(key)
    ),
    "x5u header": lambda t, idp, key: forge(
        {**parts(t)[0], "x5u": "http://127.0.0.1:9/cert"}, parts(t)[1], _rsa_signer(key)
    ),
    "embedded jwk header": lambda t, idp, key: forge(
        {**parts(t)[0], "jwk": RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)},
        parts(t)[1],
        _rsa_signer(key),
    ),
    "not a JWT": lambda t, idp, key: "definitely-not-a-jwt",
}


@pytest.mark.parametrize("case", list(TOKEN_MATRIX))
def test_forged_and_tampered_tokens_get_401_without_provider_calls(
    case, keycloak_env, warm, attacker_key
):
    keycloak_env.add_users(keycloak_env.user("kc-victim"))
    genuine = keycloak_env.access_token("kc-victim")
    token = TOKEN_MATRIX[case](genuine, keycloak_env, attacker_key)
    keycloak_env.reset_stats()

    response = call(token)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="api", error="invalid_token"')
    assert response.json()["code"] == "invalid_token"
    assert keycloak_env.stats()["total"] == 0
    assert users_named("kc-victim") == 0


def test_token_for_another_audience_is_refused(keycloak_env, warm):
    keycloak_env.add_users(keycloak_env.user("kc-aud"))
    token = keycloak_env.access_token("kc-aud", audience="some-other-api")
    keycloak_env.reset_stats()

    response = call(token)

    assert response.status_code == 401
    assert 'error_description="invalid audience"' in response["WWW-Authenticate"]
    assert keycloak_env.stats()["total"] == 0 and users_named("kc-aud") == 0


def test_token_of_an_issuer_not_on_the_allow_list_is_refused_before_any_fetch(
    keycloak_env, warm, auth0_idp
):
    auth0_idp.add_users(auth0_idp.user("stranger", tenant="alpha"))
    token = auth0_idp.access_token("stranger")
    auth0_idp.reset_stats()

    response = call(token)

    assert response.status_code == 401
    assert 'error_description="unknown issuer"' in response["WWW-Authenticate"]
    assert auth0_idp.stats()["total"] == 0 and keycloak_env.stats()["total"] == 0


def test_expired_token_is_refused(settings, keycloak_env, warm):
    settings.OIDC_LEEWAY_SECONDS = 0
    keycloak_env.add_users(keycloak_env.user("kc-late"))
    token = keycloak_env.access_token("kc-late", ttl=1)
    exp = parts(token)[1]["exp"]
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    keycloak_env.reset_stats()

    response = call(token)

    assert response.status_code == 401
    assert 'error_description="token expired"' in response["WWW-Authenticate"]
    assert users_named("kc-late") == 0


@pytest.fixture
def key_provider(key_server, alpha):
    """A database provider whose signing key the test holds, bound to alpha."""
    provider = IdentityProvider.objects.create(
        name="Key server", issuer=key_server.issuer, audience=AUDIENCE, tenant_claim="tenant_id"
    )
    IdentityProviderTenant.objects.create(provider=provider, tenant=alpha)
    assert call(key_server.sign(key_server.claims(sub="warm"))).status_code == 200
    key_server.requests.clear()
    return key_server


LIFETIME_MATRIX = {
    "missing exp": ({"exp": ...}, "missing claim: exp"),
    "null exp": ({"exp": None}, "missing claim: exp"),
    "exp as a string": ({"exp": "9999999999"}, "invalid exp claim"),
    "expired beyond the leeway": ({"exp": int(time.time()) - 120}, "token expired"),
    "missing iat": ({"iat": ...}, "missing claim: iat"),
    "iat in the future": ({"iat": int(time.time()) + 3600}, "token issued in the future"),
    "nbf in the future": ({"nbf": int(time.time()) + 3600}, "token not yet valid"),
    "missing aud": ({"aud": ...}, "missing claim: aud"),
    "missing sub": ({"sub": ...}, "missing claim: sub"),
    "wrong iss inside a validly signed token": ({"iss": "http://127.0.0.1:9"}, "unknown issuer"),
}


@pytest.mark.parametrize("case", list(LIFETIME_MATRIX))
def test_validly_signed_tokens_with_bad_claims_get_401_without_fetches(case, key_provider):
    overrides, reason = LIFETIME_MATRIX[case]
    token = key_provider.sign(key_provider.claims(**{"sub": "bad-claims", **overrides}))

    response = call(token)

    assert response.status_code == 401
    assert f'error_description="{reason}"' in response["WWW-Authenticate"]
    assert key_provider.requests == []
    assert users_named("bad-claims") == 0


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer  two-spaces", "Bearer a b", "bearer\tx", "Bearerx.y.z"]
)
def test_malformed_authorization_header_is_401(db, header):
    response = APIClient().get("/api/me/", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


# --- THREATS 23: rotation and JWKS outages ---------------------------------------------------


def test_rotated_key_is_fetched_once_and_unknown_kids_are_rate_limited(
    settings, keycloak_env, alpha, attacker_key
):
    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 0.5
    keycloak_env.add_users(keycloak_env.user("kc-rot"))
    old_token = keycloak_env.access_token("kc-rot")
    assert call(old_token).status_code == 200
    time.sleep(0.55)  # past the rate limit of the first fetch
    new_kid = keycloak_env.rotate(keep_old=True)
    new_token = keycloak_env.access_token("kc-rot")
    assert parts(new_token)[0]["kid"] == new_kid
    forged = forge(
        {**parts(new_token)[0], "kid": "random"}, parts(new_token)[1], _rsa_signer(attacker_key)
    )
    keycloak_env.reset_stats()

    assert call(new_token).status_code == 200  # unknown kid: one refetch
    assert call(forged).status_code == 401  # another unknown kid right after: rate-limited
    for _ in range(20):
        assert call(new_token).status_code == 200
        assert call(old_token).status_code == 200

    assert keycloak_env.stats()["jwks"] == 1
    assert keycloak_env.stats()["total"] == 1


def test_cached_keys_keep_working_while_the_jwks_endpoint_is_down(settings, keycloak_env, alpha):
    # Refresh on every request, so each one really tries the dead endpoint.
    settings.OIDC_JWKS_SOFT_TTL_SECONDS = 0
    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 0
    keycloak_env.add_users(keycloak_env.user("kc-down"))
    token = keycloak_env.access_token("kc-down")
    assert call(token).status_code == 200
    keycloak_env.jwks_down(True)
    try:
        keycloak_env.reset_stats()
        statuses = {call(token).status_code for _ in range(5)}
        stats = keycloak_env.stats()
    finally:
        keycloak_env.jwks_down(False)

    assert statuses == {200}
    assert stats["jwks"] + stats["discovery"] >= 5  # it was tried, and failed


def test_nothing_cached_and_jwks_down_refuses(keycloak_env, alpha):
    keycloak_env.add_users(keycloak_env.user("kc-cold"))
    token = keycloak_env.access_token("kc-cold")
    keycloak_env.jwks_down(True)
    try:
        response = call(token)
    finally:
        keycloak_env.jwks_down(False)

    assert response.status_code == 401
    assert 'error_description="unknown signing key"' in response["WWW-Authenticate"]


# --- THREATS 24: the tenant claim -----------------------------------------------------------

CLAIM_SHAPES = {
    "missing": (..., "tenant_claim_invalid"),
    "empty": ("", "tenant_claim_invalid"),
    "null": (None, "tenant_claim_invalid"),
    "a list": (["alpha"], "tenant_claim_invalid"),
    "a number": (5, "tenant_claim_invalid"),
    "an object": ({"id": "alpha"}, "tenant_claim_invalid"),
    "leading space": (" alpha", "tenant_claim_invalid"),
    "trailing newline": ("alpha\n", "tenant_claim_invalid"),
    "zero-width space": ("alpha\u200b", "tenant_claim_invalid"),
    "upper case": ("ALPHA", "tenant_unknown"),
    "title case": ("Alpha", "tenant_unknown"),
    "the slug of a tenant whose external id differs": ("charlie", "tenant_unknown"),
    "unknown tenant": ("nobody", "tenant_unknown"),
    "suspended tenant": ("bravo", "tenant_inactive"),
}


@pytest.mark.parametrize("case", list(CLAIM_SHAPES))
def test_unusable_tenant_claims_get_403_and_create_nothing(case, keycloak_env, warm, bravo):
    Tenant.objects.create(slug="charlie", external_id="ext-charlie", name="Charlie")
    bravo.status = Tenant.Status.SUSPENDED
    bravo.save()
    value, code = CLAIM_SHAPES[case]
    sub = "kc-shape-" + hashlib.sha256(case.encode()).hexdigest()[:12]
    keycloak_env.add_users(keycloak_env.user(sub, tenant=value))
    token = keycloak_env.access_token(sub)
    keycloak_env.reset_stats()
    users_before = User.objects.count()

    response = call(token)

    assert response.status_code == 403, response.content
    assert response.json()["code"] == code
    assert User.objects.count() == users_before
    assert keycloak_env.stats()["total"] == 0


def test_member_removed_by_an_admin_loses_access_for_every_method(keycloak_env, alpha):
    keycloak_env.add_users(keycloak_env.user("kc-leaver"))
    token = keycloak_env.access_token("kc-leaver")
    assert call(token).status_code == 200
    user = User.objects.get(subject="kc-leaver")
    with tenant_context(alpha):
        workflow = Workflow.objects.create(name="Kept", owner=user)
        Membership.objects.filter(user=user).delete()

    responses = [
        call(token),
        call(token, "/api/workflows/"),
        call(token, "/api/workflows/", "post", data={"name": "x"}, format="json"),
        call(token, f"/api/workflows/{workflow.pk}/", "patch", data={"name": "y"}, format="json"),
        call(token, f"/api/workflows/{workflow.pk}/", "delete"),
    ]

    assert [r.status_code for r in responses] == [403] * 5
    assert {r.json()["code"] for r in responses} == {"not_a_member"}
    with tenant_context(alpha):
        # Not re-provisioned by the next token, and nothing was changed.
        assert not Membership.objects.filter(user=user).exists()
        assert list(Workflow.objects.values_list("name", flat=True)) == ["Kept"]


def test_suspension_deactivation_and_a_new_external_id_count_at_the_next_request(
    keycloak_env, alpha
):
    # The hot path learns alpha's id from the first request; every later change must still
    # count at once (accounts.admission re-reads tenant, user and membership in one query).
    keycloak_env.add_users(keycloak_env.user("kc-steady"))
    token = keycloak_env.access_token("kc-steady")
    assert call(token).status_code == 200

    Tenant.objects.filter(pk=alpha.pk).update(status=Tenant.Status.SUSPENDED)
    assert call(token).json()["code"] == "tenant_inactive"
    Tenant.objects.filter(pk=alpha.pk).update(status=Tenant.Status.ACTIVE)
    assert call(token).status_code == 200

    User.objects.filter(subject="kc-steady").update(is_active=False)
    assert call(token).json()["code"] == "user_inactive"
    User.objects.filter(subject="kc-steady").update(is_active=True)

    Tenant.objects.filter(pk=alpha.pk).update(external_id="alpha-renamed")
    response = call(token)
    assert response.status_code == 403 and response.json()["code"] == "tenant_unknown"


# --- THREATS 25, 27: tenants addressed, mixed credentials, same e-mail -------------------------


def test_a_token_of_alpha_cannot_reach_bravo_rows(keycloak_env, warm, bravo):
    with tenant_context(bravo):
        foreign = Workflow.objects.create(name="Bravo's")

    response = call(warm, f"/api/workflows/{foreign.pk}/")
    deleted = call(warm, f"/api/workflows/{foreign.pk}/", "delete")

    assert response.status_code == 404 and deleted.status_code == 404
    with tenant_context(bravo):
        assert Workflow.objects.filter(pk=foreign.pk).exists()


def test_session_of_one_user_and_token_of_another_is_rejected(keycloak_env, alpha, bravo, client_b):
    with tenant_context(bravo):
        Workflow.objects.create(name="Bob's secret")
    keycloak_env.add_users(keycloak_env.user("kc-mallory"))
    token = keycloak_env.access_token("kc-mallory")

    for method, kwargs in [("get", {}), ("post", {"data": {"name": "x"}, "format": "json"})]:
        response = call(token, "/api/workflows/", method, client=client_b, **kwargs)
        assert response.status_code == 403
        assert response.json() == {
            "detail": "The session and the bearer token belong to different users.",
            "code": "conflicting_credentials",
        }
    assert users_named("kc-mallory") == 0
    with tenant_context(bravo):
        assert list(Workflow.objects.values_list("name", flat=True)) == ["Bob's secret"]


def test_session_and_token_of_the_same_person_are_accepted(keycloak_env, warm):
    user = User.objects.get(subject="warm-up")
    client = APIClient()
    client.force_login(user)

    assert call(warm, client=client).status_code == 200


def test_same_email_at_two_providers_gives_two_accounts(keycloak_env, auth0_idp, alpha):
    provider = IdentityProvider.objects.create(
        name="Alpha's Auth0",
        kind="auth0",
        issuer=auth0_idp.issuer,
        audience=AUDIENCE,
        tenant_claim=f"{NAMESPACE}tenant_id",
        roles_claim=f"{NAMESPACE}roles",
        admin_role="tenant-admin",
    )
    IdentityProviderTenant.objects.create(provider=provider, tenant=alpha)
    local = User.objects.create_user(username="sam", email="sam@example.com", password="pw")
    keycloak_env.add_users(keycloak_env.user("sam", email="sam@example.com"))
    auth0_idp.add_users(
        auth0_idp.user("auth0|sam", email="sam@example.com", roles=["tenant-admin"])
    )

    first = call(keycloak_env.access_token("sam"))
    second = call(auth0_idp.access_token("auth0|sam"))

    assert first.status_code == 200 and second.status_code == 200, second.content
    ids = {first.json()["user"]["id"], second.json()["user"]["id"], local.pk}
    assert len(ids) == 3
    assert second.json()["role"] == "admin"  # from the namespaced Auth0 roles claim
    assert User.objects.filter(email="sam@example.com").count() == 3


# --- database providers and their tenant bindings (THREATS 26) ---------------------------------


@pytest.fixture
def auth0_bound_to_bravo(auth0_idp, alpha, bravo):
    provider = IdentityProvider.objects.create(
        name="Bravo's Auth0",
        kind="auth0",
        issuer=auth0_idp.issuer,
        audience=AUDIENCE,
        tenant_claim=f"{NAMESPACE}tenant_id",
    )
    IdentityProviderTenant.objects.create(provider=provider, tenant=bravo)
    auth0_idp.reset_stats()
    return provider


def test_database_provider_may_assert_only_its_bound_tenants(auth0_idp, auth0_bound_to_bravo):
    auth0_idp.add_users(
        auth0_idp.user("auth0|in-b", tenant="bravo"),
        auth0_idp.user("auth0|in-a", tenant="alpha"),
        auth0_idp.user("auth0|nowhere", tenant="nowhere"),
    )

    own = call(auth0_idp.access_token("auth0|in-b"))
    foreign = call(auth0_idp.access_token("auth0|in-a"))
    unknown = call(auth0_idp.access_token("auth0|nowhere"))

    assert own.status_code == 200 and own.json()["tenant"]["slug"] == "bravo"
    assert foreign.status_code == 403
    # A tenant bound to someone else answers exactly like one that does not exist.
    assert (
        foreign.json() == unknown.json() == {"detail": "Unknown tenant.", "code": "tenant_unknown"}
    )
    assert users_named("auth0|in-a") == 0


def test_disabling_a_provider_takes_effect_at_once(auth0_idp, auth0_bound_to_bravo):
    auth0_idp.add_users(auth0_idp.user("auth0|dis", tenant="bravo"))
    token = auth0_idp.access_token("auth0|dis")
    assert call(token).status_code == 200

    auth0_bound_to_bravo.enabled = False
    auth0_bound_to_bravo.save()

    response = call(token)
    assert response.status_code == 401
    assert 'error_description="unknown issuer"' in response["WWW-Authenticate"]


def test_removing_a_binding_takes_effect_at_once(auth0_idp, auth0_bound_to_bravo):
    auth0_idp.add_users(auth0_idp.user("auth0|unbound", tenant="bravo"))
    token = auth0_idp.access_token("auth0|unbound")
    assert call(token).status_code == 200

    IdentityProviderTenant.objects.filter(provider=auth0_bound_to_bravo).delete()

    assert call(token).status_code == 403


def test_auth0_as_the_environment_provider(settings, auth0_idp, alpha):
    from accounts.conf import claim_defaults

    defaults = claim_defaults(provider="auth0", namespace="ameide.example")
    settings.OIDC_PROVIDER = "auth0"
    settings.OIDC_ISSUER = auth0_idp.issuer
    settings.OIDC_AUDIENCE = [AUDIENCE]
    settings.OIDC_TENANT_CLAIM = defaults["tenant_claim"]
    settings.OIDC_ROLES_CLAIM = defaults["roles_claim"]
    settings.OIDC_ADMIN_ROLE = defaults["admin_role"]
    auth0_idp.add_users(auth0_idp.user("auth0|env", tenant="alpha", roles=["tenant-admin"]))

    response = call(auth0_idp.access_token("auth0|env"))

    assert response.status_code == 200, response.content
    assert response.json()["tenant"]["slug"] == "alpha" and response.json()["role"] == "admin"


def test_a_known_member_is_admitted_by_one_fixed_query(keycloak_env, warm):
    """Issue 11: admission's hot path is one statement of fixed SQL (no queryset compiled),
    and what it loads is the member's own membership, user and tenant."""
    assert call(warm).status_code == 200  # learns the tenant id hint
    with CaptureQueriesContext(connection) as queries:
        response = call(warm, "/api/workflows/")
    assert response.status_code == 200
    admission = [q["sql"] for q in queries.captured_queries if "accounts_membership" in q["sql"]]
    assert len(admission) == 1, admission
    assert admission[0].startswith('SELECT m."id"') and "LIMIT 1" in admission[0]
