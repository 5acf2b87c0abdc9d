"""Tests for accounts.tokens against a real discovery/JWKS HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from accounts.errors import InvalidToken, TenantClaimError
from accounts.tokens import (
    IssuerConfig,
    JWKSCache,
    TokenVerifier,
    VerifiedToken,
    parse_bearer,
)

NOW = 1_700_000_000.0
AUDIENCE = "ameide-api"
TENANT_CLAIM = "tenant_id"
NAMESPACE = "https://ameide.example/"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class IdpServer:
    """Serves discovery and JWKS over real HTTP; can go down, rotate keys and redirect."""

    def __init__(self, *, trailing_slash: bool = False) -> None:
        self.jwks_keys: list[dict[str, Any]] = []
        self.down = False
        self.delay = 0.0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.issuer = self.base + ("/" if trailing_slash else "")
        self.discovery_issuer = self.issuer
        # A short poll interval keeps shutdown() (once per test) from costing half a second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(handler.path)
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            self._send(handler, 503, {"error": "down"})
        elif handler.path == "/.well-known/openid-configuration":
            body = {"issuer": self.discovery_issuer, "jwks_uri": f"{self.base}/jwks"}
            self._send(handler, 200, body)
        elif handler.path == "/jwks":
            self._send(handler, 200, {"keys": list(self.jwks_keys)})
        elif handler.path == "/redirect-to-jwks":
            handler.send_response(302)
            handler.send_header("Location", f"{self.base}/jwks")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        else:
            self._send(handler, 404, {"error": "not found"})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def rsa_jwk(private_key: rsa.RSAPrivateKey, *, kid: str, **extra: Any) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", **extra}


def ec_jwk(private_key: ec.EllipticCurvePrivateKey, *, kid: str) -> dict[str, Any]:
    jwk = ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def claims_for(issuer: str, **overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": issuer,
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": int(NOW) - 60,
        "exp": int(NOW) + 600,
        TENANT_CLAIM: "acme",
        "email": "ada@acme.example",
        "name": "Ada",
        "roles": ["admin", "viewer"],
    }
    claims.update(overrides)
    return claims


def sign(
    private_key: Any,
    claims: dict[str, Any],
    *,
    kid: str | None = "k1",
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
) -> str:
    all_headers = {**({"kid": kid} if kid is not None else {}), **(headers or {})}
    return jwt.encode(claims, private_key, algorithm=alg, headers=all_headers)


def hand_made(
    header: dict[str, Any], claims: dict[str, Any], signer: Callable[[bytes], bytes]
) -> str:
    """Build a token PyJWT refuses to produce (alg none, HMAC keyed with a PEM)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signer(signing_input.encode()))}"


@pytest.fixture(scope="session")
def key1() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def key2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def idp(key1: rsa.RSAPrivateKey) -> Iterator[IdpServer]:
    server = IdpServer()
    server.jwks_keys = [rsa_jwk(key1, kid="k1", alg="RS256")]
    yield server
    server.close()


@pytest.fixture
def mono() -> FakeClock:
    return FakeClock(1_000.0)


@pytest.fixture
def cache(mono: FakeClock) -> JWKSCache:
    return JWKSCache(clock=mono)


@pytest.fixture
def config(idp: IdpServer) -> IssuerConfig:
    return IssuerConfig(
        issuer=idp.issuer, audiences=(AUDIENCE,), tenant_claim=TENANT_CLAIM, roles_claim="roles"
    )


def verifier_for(config: IssuerConfig, cache: JWKSCache) -> TokenVerifier:
    configs = {config.issuer: config}
    return TokenVerifier(issuers=configs.get, jwks=cache, clock=FakeClock(NOW))


@pytest.fixture
def verifier(config: IssuerConfig, cache: JWKSCache) -> TokenVerifier:
    return verifier_for(config, cache)


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as excinfo:
        verifier.verify(token)
    return excinfo.value.reason


def warm(verifier: TokenVerifier, key: rsa.RSAPrivateKey, issuer: str) -> None:
    verifier.verify(sign(key, claims_for(issuer)))


# --- happy path -------------------------------------------------------------------------------


def test_valid_token_is_verified(verifier, key1, idp, cache):
    result = verifier.verify(sign(key1, claims_for(idp.issuer)))

    assert result == VerifiedToken(
        issuer=idp.issuer,
        subject="user-1",
        audience=AUDIENCE,
        claims=claims_for(idp.issuer),
        tenant_external_id="acme",
        roles=("admin", "viewer"),
        email="ada@acme.example",
        name="Ada",
        expires_at=int(NOW) + 600,
    )
    assert idp.requests == ["/.well-known/openid-configuration", "/jwks"]
    assert cache.fetch_count == 2


def test_audience_list_with_one_configured_audience_is_accepted(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, aud=["other-api", AUDIENCE]))

    assert verifier.verify(token).audience == AUDIENCE


def test_many_verifications_do_not_fetch_again(verifier, key1, idp, cache):
    token = sign(key1, claims_for(idp.issuer))
    for _ in range(300):
        verifier.verify(token)

    assert cache.fetch_count == 2
    assert len(idp.requests) == 2


def test_concurrent_cold_start_fetches_once(verifier, key1, idp, cache):
    idp.delay = 0.2  # widen the window in which threads race for the first fetch
    token = sign(key1, claims_for(idp.issuer))
    results: list[VerifiedToken] = []
    threads = [
        threading.Thread(target=lambda: results.append(verifier.verify(token))) for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 16
    assert cache.fetch_count == 2


def test_ec_key_verifies_es256(cache, idp, config, ec_key):
    idp.jwks_keys = [ec_jwk(ec_key, kid="ec1")]
    token = sign(ec_key, claims_for(idp.issuer), kid="ec1", alg="ES256")

    assert verifier_for(config, cache).verify(token).subject == "user-1"


def test_rsa_key_without_alg_verifies_ps256(cache, idp, config, key1):
    # PyJWK would bind such a key to RS256 and reject PS256; the allow-list decides instead.
    idp.jwks_keys = [rsa_jwk(key1, kid="k1")]
    token = sign(key1, claims_for(idp.issuer), alg="PS256")

    assert verifier_for(config, cache).verify(token).subject == "user-1"


# --- header attacks ---------------------------------------------------------------------------


@pytest.mark.parametrize("known_issuer", [True, False])
def test_alg_none_is_refused_without_fetch(verifier, idp, cache, known_issuer):
    issuer = idp.issuer if known_issuer else "https://unknown.example"
    token = hand_made({"alg": "none", "kid": "k1"}, claims_for(issuer), lambda _: b"")

    # The header is judged before the issuer is even looked up.
    assert refused(verifier, token) == "algorithm not allowed"
    assert cache.fetch_count == 0


def test_hs256_keyed_with_public_pem_is_refused(verifier, key1, idp, cache):
    pem = key1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made(
        {"alg": "HS256", "kid": "k1", "typ": "JWT"},
        claims_for(idp.issuer),
        lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
    )

    assert refused(verifier, token) == "algorithm not allowed"
    assert cache.fetch_count == 0


def test_algorithm_outside_issuer_allow_list_is_refused(cache, idp, key1):
    config = IssuerConfig(
        issuer=idp.issuer, audiences=(AUDIENCE,), tenant_claim=TENANT_CLAIM, algorithms=("RS256",)
    )
    token = sign(key1, claims_for(idp.issuer), alg="PS256")

    assert refused(verifier_for(config, cache), token) == "algorithm not allowed"
    assert cache.fetch_count == 0


def test_missing_kid_is_refused_without_fetch(verifier, key1, idp, cache):
    token = sign(key1, claims_for(idp.issuer), kid=None)

    assert refused(verifier, token) == "missing key id"
    assert cache.fetch_count == 0


@pytest.mark.parametrize("param", ["jku", "x5u", "jwk", "x5c"])
def test_key_bearing_headers_are_refused_without_fetch(verifier, attacker_key, idp, cache, param):
    attacker_jwk = rsa_jwk(attacker_key, kid="evil")
    values = {
        "jku": f"{idp.base}/attacker-jwks",
        "x5u": f"{idp.base}/attacker-cert",
        "jwk": attacker_jwk,
        "x5c": ["MIIBIjANBgkq"],
    }
    token = sign(attacker_key, claims_for(idp.issuer), kid="evil", headers={param: values[param]})

    assert refused(verifier, token) == "key references in token header not allowed"
    assert cache.fetch_count == 0
    assert idp.requests == []


def test_crit_header_is_refused(verifier, key1, idp, cache):
    token = sign(key1, claims_for(idp.issuer), headers={"crit": ["exp"]})

    assert refused(verifier, token) == "critical header parameters not supported"
    assert cache.fetch_count == 0


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "é.e30.sig", "e30.e30.s!g", "W10.e30.sig", "x" * 20_000],
    ids=["empty", "one-part", "two-part", "four-part", "non-ascii", "bad-char", "array", "huge"],
)
def test_malformed_tokens_are_refused(verifier, cache, token):
    assert refused(verifier, token) == "malformed token"
    assert cache.fetch_count == 0


# --- issuer and keys --------------------------------------------------------------------------


def test_unknown_issuer_is_refused_before_any_fetch(verifier, key1, idp, cache):
    token = sign(key1, claims_for("https://evil.example/"))

    assert refused(verifier, token) == "unknown issuer"
    assert cache.fetch_count == 0
    assert idp.requests == []


def test_issuer_lookup_returning_a_different_issuer_is_refused(cache, config, key1, idp):
    # e.g. a lookup that normalises trailing slashes must not widen what "iss" may say
    verifier = TokenVerifier(issuers=lambda _iss: config, jwks=cache, clock=FakeClock(NOW))
    token = sign(key1, claims_for(idp.issuer + "/"))

    assert refused(verifier, token) == "unknown issuer"
    assert cache.fetch_count == 0


def test_token_signed_by_other_key_under_known_kid_is_refused(verifier, key1, attacker_key, idp):
    warm(verifier, key1, idp.issuer)
    token = sign(attacker_key, claims_for(idp.issuer), kid="k1")

    assert refused(verifier, token) == "invalid signature"


def test_unknown_kid_refetches_once_per_interval(verifier, key1, idp, cache, mono):
    warm(verifier, key1, idp.issuer)
    assert cache.fetch_count == 2
    mono.advance(31)

    assert refused(verifier, sign(key1, claims_for(idp.issuer), kid="nope-1")) == (
        "unknown signing key"
    )
    assert cache.fetch_count == 3
    assert idp.requests[-1] == "/jwks"

    mono.advance(10)
    assert refused(verifier, sign(key1, claims_for(idp.issuer), kid="nope-2")) == (
        "unknown signing key"
    )
    assert cache.fetch_count == 3

    mono.advance(21)
    refused(verifier, sign(key1, claims_for(idp.issuer), kid="nope-3"))
    assert cache.fetch_count == 4


def test_key_rotation_new_kid_is_accepted_after_one_refetch(verifier, key1, key2, idp, cache, mono):
    warm(verifier, key1, idp.issuer)
    idp.jwks_keys = [rsa_jwk(key1, kid="k1"), rsa_jwk(key2, kid="k2")]
    mono.advance(31)

    assert verifier.verify(sign(key2, claims_for(idp.issuer), kid="k2")).subject == "user-1"
    assert cache.fetch_count == 3
    assert verifier.verify(sign(key1, claims_for(idp.issuer), kid="k1")).subject == "user-1"
    assert verifier.verify(sign(key2, claims_for(idp.issuer), kid="k2")).subject == "user-1"
    assert cache.fetch_count == 3


def test_rotation_right_after_a_fetch_waits_for_the_refetch_interval(
    verifier, key1, key2, idp, cache, mono
):
    warm(verifier, key1, idp.issuer)
    idp.jwks_keys = [rsa_jwk(key1, kid="k1"), rsa_jwk(key2, kid="k2")]
    token = sign(key2, claims_for(idp.issuer), kid="k2")

    assert refused(verifier, token) == "unknown signing key"
    assert cache.fetch_count == 2
    mono.advance(30)
    assert verifier.verify(token).subject == "user-1"
    assert cache.fetch_count == 3


def test_cached_keys_keep_working_while_jwks_is_down(verifier, key1, idp, cache, mono):
    token = sign(key1, claims_for(idp.issuer))
    verifier.verify(token)
    idp.down = True

    assert verifier.verify(token).subject == "user-1"
    assert cache.fetch_count == 2

    mono.advance(3_601)  # past the soft TTL: a refresh is attempted, fails, cache still serves
    assert verifier.verify(token).subject == "user-1"
    assert cache.fetch_count == 3
    assert verifier.verify(token).subject == "user-1"
    assert cache.fetch_count == 3  # failed refresh is rate-limited too

    assert refused(verifier, sign(key1, claims_for(idp.issuer), kid="new")) == (
        "unknown signing key"
    )
    assert cache.fetch_count == 3

    mono.advance(31)
    assert verifier.verify(token).subject == "user-1"
    assert cache.fetch_count == 4
    # After a failed JWKS fetch the discovery document is consulted again, in case it moved.
    assert idp.requests[-1] == "/.well-known/openid-configuration"


def test_soft_ttl_refresh_drops_keys_the_idp_withdrew(verifier, key1, key2, idp, cache, mono):
    warm(verifier, key1, idp.issuer)
    idp.jwks_keys = [rsa_jwk(key2, kid="k2")]
    token = sign(key1, claims_for(idp.issuer))

    assert verifier.verify(token).subject == "user-1"
    mono.advance(3_601)
    assert refused(verifier, token) == "unknown signing key"
    assert cache.fetch_count == 3


def test_jwks_never_reachable_refuses(verifier, key1, idp, cache):
    idp.down = True

    assert refused(verifier, sign(key1, claims_for(idp.issuer))) == "unknown signing key"
    assert cache.fetch_count == 1


def test_discovery_naming_another_issuer_is_not_trusted(verifier, key1, idp, cache):
    idp.discovery_issuer = "https://evil.example"

    assert refused(verifier, sign(key1, claims_for(idp.issuer))) == "unknown signing key"
    assert idp.requests == ["/.well-known/openid-configuration"]


def test_configured_jwks_uri_skips_discovery(cache, idp, key1):
    config = IssuerConfig(
        issuer=idp.issuer,
        audiences=(AUDIENCE,),
        tenant_claim=TENANT_CLAIM,
        jwks_uri=f"{idp.base}/jwks",
    )

    assert verifier_for(config, cache).verify(sign(key1, claims_for(idp.issuer))).subject
    assert idp.requests == ["/jwks"]
    assert cache.fetch_count == 1


def test_redirects_are_not_followed(cache, idp, key1):
    config = IssuerConfig(
        issuer=idp.issuer,
        audiences=(AUDIENCE,),
        tenant_claim=TENANT_CLAIM,
        jwks_uri=f"{idp.base}/redirect-to-jwks",
    )

    assert refused(verifier_for(config, cache), sign(key1, claims_for(idp.issuer))) == (
        "unknown signing key"
    )
    assert idp.requests == ["/redirect-to-jwks"]


def test_fetch_gives_up_after_timeout(idp, key1, mono):
    idp.delay = 1.5
    cache = JWKSCache(clock=mono, timeout=0.3)
    config = IssuerConfig(issuer=idp.issuer, audiences=(AUDIENCE,), tenant_claim=TENANT_CLAIM)
    started = time.monotonic()

    assert refused(verifier_for(config, cache), sign(key1, claims_for(idp.issuer))) == (
        "unknown signing key"
    )
    assert time.monotonic() - started < 1.2


def test_injected_fetch_function_is_used_and_counted(key1, mono):
    issuer = "https://idp.example/realms/ameide"
    documents = {
        f"{issuer}/.well-known/openid-configuration": {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/certs",
        },
        f"{issuer}/certs": {"keys": [rsa_jwk(key1, kid="k1")]},
    }
    seen: list[str] = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        return json.dumps(documents[url]).encode()

    cache = JWKSCache(fetch=fetch, clock=mono)
    config = IssuerConfig(issuer=issuer, audiences=(AUDIENCE,), tenant_claim=TENANT_CLAIM)

    assert verifier_for(config, cache).verify(sign(key1, claims_for(issuer))).issuer == issuer
    assert seen == list(documents)
    assert cache.fetch_count == 2


@pytest.mark.parametrize(
    ("jwk_extra", "alg", "signer"),
    [
        ({"alg": "RS512"}, "RS256", "rsa"),
        ({"use": "enc"}, "RS256", "rsa"),
        ({"key_ops": ["encrypt"]}, "RS256", "rsa"),
        ({}, "ES256", "ec"),
    ],
    ids=["jwk-alg-differs", "enc-key", "key-ops-without-verify", "ec-token-rsa-key"],
)
def test_key_must_fit_the_token_algorithm(cache, config, idp, key1, ec_key, jwk_extra, alg, signer):
    idp.jwks_keys = [rsa_jwk(key1, kid="k1", **jwk_extra)]
    private_key = key1 if signer == "rsa" else ec_key
    token = sign(private_key, claims_for(idp.issuer), alg=alg)

    assert (
        refused(verifier_for(config, cache), token) == "signing key not usable with this algorithm"
    )


def test_jwks_publishing_private_key_material_is_ignored(cache, config, idp, key1):
    private_jwk = RSAAlgorithm.to_jwk(key1, as_dict=True)
    idp.jwks_keys = [{**private_jwk, "kid": "k1"}]

    assert refused(verifier_for(config, cache), sign(key1, claims_for(idp.issuer))) == (
        "unknown signing key"
    )


def test_short_rsa_keys_are_ignored(cache, config, idp):
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    idp.jwks_keys = [rsa_jwk(weak_key, kid="k1")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT only warns when signing with a short key
        token = sign(weak_key, claims_for(idp.issuer))

    assert refused(verifier_for(config, cache), token) == "unknown signing key"


# --- claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud"])
def test_missing_required_claim_is_refused(verifier, key1, idp, claim):
    claims = claims_for(idp.issuer)
    del claims[claim]

    assert refused(verifier, sign(key1, claims)) == f"missing claim: {claim}"


def test_null_exp_counts_as_missing(verifier, key1, idp):
    assert refused(verifier, sign(key1, claims_for(idp.issuer, exp=None))) == "missing claim: exp"


def test_missing_iss_is_refused_without_fetch(verifier, key1, idp, cache):
    claims = claims_for(idp.issuer)
    del claims["iss"]

    assert refused(verifier, sign(key1, claims)) == "missing issuer"
    assert cache.fetch_count == 0


@pytest.mark.parametrize("exp", [str(int(NOW) + 600), True, float("nan"), float("inf")], ids=repr)
def test_non_numeric_exp_is_refused(verifier, key1, idp, exp):
    # PyJWT itself would accept the string ("int()" parses it) and crash or pass on the rest.
    assert refused(verifier, sign(key1, claims_for(idp.issuer, exp=exp))) == "invalid exp claim"


def test_empty_subject_is_refused(verifier, key1, idp):
    assert refused(verifier, sign(key1, claims_for(idp.issuer, sub=""))) == "invalid subject"


def test_expired_token_is_refused(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, iat=int(NOW) - 7200, exp=int(NOW) - 3600))

    assert refused(verifier, token) == "token expired"


@pytest.mark.parametrize(
    ("exp_offset", "accepted"), [(-10, True), (-29, True), (-30, False), (-40, False)]
)
def test_expiry_leeway_boundary(verifier, key1, idp, exp_offset, accepted):
    token = sign(key1, claims_for(idp.issuer, iat=int(NOW) - 600, exp=int(NOW) + exp_offset))

    if accepted:
        assert verifier.verify(token).expires_at == int(NOW) + exp_offset
    else:
        assert refused(verifier, token) == "token expired"


def test_future_nbf_is_refused(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, nbf=int(NOW) + 120))

    assert refused(verifier, token) == "token not yet valid"


def test_nbf_within_leeway_is_accepted(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, nbf=int(NOW) + 20))

    assert verifier.verify(token).subject == "user-1"


def test_future_iat_is_refused(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, iat=int(NOW) + 120))

    assert refused(verifier, token) == "token issued in the future"


def test_wrong_audience_is_refused(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, aud="someone-else"))

    assert refused(verifier, token) == "invalid audience"


# --- tenant claim -----------------------------------------------------------------------------

_MISSING = object()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (_MISSING, "tenant claim missing"),
        ("", "tenant claim is empty"),
        (None, "tenant claim is not a string"),
        (["a"], "tenant claim is not a string"),
        (5, "tenant claim is not a string"),
        (True, "tenant claim is not a string"),
        ({"a": 1}, "tenant claim is not a string"),
        (" a", "tenant claim has surrounding whitespace"),
        ("a ", "tenant claim has surrounding whitespace"),
        ("\u00a0acme", "tenant claim has surrounding whitespace"),
        ("ac\x00me", "tenant claim contains control characters"),
        ("ac\nme", "tenant claim contains control characters"),
        ("ac\u200bme", "tenant claim contains control characters"),
    ],
    ids=repr,
)
def test_bad_tenant_claim_raises_tenant_claim_error(verifier, key1, idp, value, reason):
    claims = claims_for(idp.issuer)
    if value is _MISSING:
        del claims[TENANT_CLAIM]
    else:
        claims[TENANT_CLAIM] = value

    with pytest.raises(TenantClaimError) as excinfo:
        verifier.verify(sign(key1, claims))

    assert not isinstance(excinfo.value, InvalidToken)
    assert excinfo.value.reason == reason
    assert (excinfo.value.issuer, excinfo.value.subject) == (idp.issuer, "user-1")


def test_tenant_claim_is_returned_verbatim(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, **{TENANT_CLAIM: "AcMe-Ünïcode"}))

    assert verifier.verify(token).tenant_external_id == "AcMe-Ünïcode"


def test_tenant_claim_is_judged_only_after_the_signature(verifier, key1, attacker_key, idp):
    warm(verifier, key1, idp.issuer)
    token = sign(attacker_key, claims_for(idp.issuer, **{TENANT_CLAIM: ["a"]}))

    assert refused(verifier, token) == "invalid signature"


def test_tenant_claim_is_judged_only_after_expiry(verifier, key1, idp):
    token = sign(key1, claims_for(idp.issuer, exp=int(NOW) - 3600, **{TENANT_CLAIM: ""}))

    assert refused(verifier, token) == "token expired"


# --- provider flavours ------------------------------------------------------------------------


def test_auth0_style_namespaced_claims_and_trailing_slash_issuer(key1, mono):
    idp = IdpServer(trailing_slash=True)
    try:
        idp.jwks_keys = [rsa_jwk(key1, kid="k1")]
        config = IssuerConfig(
            issuer=idp.issuer,
            audiences=(AUDIENCE,),
            tenant_claim=f"{NAMESPACE}tenant_id",
            roles_claim=f"{NAMESPACE}roles",
        )
        verifier = verifier_for(config, JWKSCache(clock=mono))
        claims = claims_for(
            idp.issuer, **{f"{NAMESPACE}tenant_id": "org_Ab12", f"{NAMESPACE}roles": ["owner"]}
        )

        result = verifier.verify(sign(key1, claims))

        assert idp.issuer.endswith("/")
        assert idp.requests == ["/.well-known/openid-configuration", "/jwks"]
        assert (result.tenant_external_id, result.roles) == ("org_Ab12", ("owner",))
        # The plain "tenant_id" claim is present too, but only the exact namespaced key counts.
        del claims[f"{NAMESPACE}tenant_id"]
        with pytest.raises(TenantClaimError):
            verifier.verify(sign(key1, claims))
    finally:
        idp.close()


def test_keycloak_realm_access_roles(cache, idp, key1):
    config = IssuerConfig(
        issuer=idp.issuer,
        audiences=(AUDIENCE,),
        tenant_claim=TENANT_CLAIM,
        roles_claim="realm_access.roles",
    )
    claims = claims_for(idp.issuer, realm_access={"roles": ["offline_access", "tenant-admin"]})

    result = verifier_for(config, cache).verify(sign(key1, claims))

    assert result.roles == ("offline_access", "tenant-admin")


def test_exact_dotted_key_wins_over_nested_walk(cache, idp, key1):
    config = IssuerConfig(
        issuer=idp.issuer, audiences=(AUDIENCE,), tenant_claim=TENANT_CLAIM, roles_claim="a.b"
    )
    claims = claims_for(idp.issuer, **{"a.b": ["literal"], "a": {"b": ["nested"]}})

    assert verifier_for(config, cache).verify(sign(key1, claims)).roles == ("literal",)


@pytest.mark.parametrize(
    "roles", ["admin", ["admin", 1], {"admin": True}, None, _MISSING], ids=repr
)
def test_malformed_roles_give_no_roles(verifier, key1, idp, roles):
    claims = claims_for(idp.issuer)
    if roles is _MISSING:
        del claims["roles"]
    else:
        claims["roles"] = roles

    assert verifier.verify(sign(key1, claims)).roles == ()


# --- configuration and header parsing ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"algorithms": ("HS256",)},
        {"algorithms": ("none",)},
        {"algorithms": ()},
        {"audiences": "ameide-api"},
        {"audiences": ()},
        {"issuer": "file:///etc/passwd"},
        {"tenant_claim": ""},
    ],
    ids=repr,
)
def test_issuer_config_refuses_unsafe_settings(overrides):
    settings = {
        "issuer": "https://idp.example",
        "audiences": (AUDIENCE,),
        "tenant_claim": TENANT_CLAIM,
        **overrides,
    }
    with pytest.raises(ValueError):
        IssuerConfig(**settings)


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        ("https://idp.example", "https://idp.example/.well-known/openid-configuration"),
        ("https://idp.example/", "https://idp.example/.well-known/openid-configuration"),
        (
            "https://idp.example/realms/ameide",
            "https://idp.example/realms/ameide/.well-known/openid-configuration",
        ),
    ],
)
def test_discovery_url_strips_one_trailing_slash(issuer, expected):
    config = IssuerConfig(issuer=issuer, audiences=(AUDIENCE,), tenant_claim=TENANT_CLAIM)

    assert config.discovery_url == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("BEARER abc.def.ghi", "abc.def.ghi"),
    ],
)
def test_parse_bearer_extracts_token(header, expected):
    assert parse_bearer(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer  abc",
        "Bearer abc def",
        "Bearer\tabc",
        "Bearerabc",
        "Bearer a,b",
    ],
)
def test_parse_bearer_refuses_malformed_headers(header):
    with pytest.raises(InvalidToken) as excinfo:
        parse_bearer(header)

    assert excinfo.value.reason == "malformed authorization header"
