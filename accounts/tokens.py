"""Local verification of OIDC bearer JWTs against per-issuer cached signing keys."""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import re
import threading
import time
import unicodedata
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from accounts.errors import InvalidToken, TenantClaimError

logger = logging.getLogger(__name__)

# Every algorithm we can verify, with the JWK "kty" (and EC curve) its key must have. Only
# asymmetric algorithms appear: under HS* the published public key would double as the secret.
_KEY_SHAPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")

# Header parameters that name or carry a key. Keys come only from the configured issuer's JWKS,
# so a token that tries to choose its own key is refused before anything is fetched.
_KEY_BEARING_HEADERS = ("jku", "x5u", "jwk", "x5c")
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "aud"]

# Real tokens are a few KiB; the cap bounds the work an anonymous caller can make us do.
_MAX_TOKEN_LENGTH = 16 * 1024
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750 section 2.1

_MIN_RSA_BITS = 2048
_MAX_DOCUMENT_BYTES = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class IssuerConfig:
    """How tokens from one identity provider are checked and mapped."""

    issuer: str
    audiences: tuple[str, ...]
    tenant_claim: str
    roles_claim: str | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway_seconds: int = 30
    jwks_uri: str | None = None

    def __post_init__(self) -> None:
        # Misconfiguration should fail at startup, not as a confusing 401 on the first request.
        if not _is_http_url(self.issuer):
            raise ValueError(f"issuer must be an http(s) URL: {self.issuer!r}")
        if self.jwks_uri is not None and not _is_http_url(self.jwks_uri):
            raise ValueError(f"jwks_uri must be an http(s) URL: {self.jwks_uri!r}")
        # A bare string would be iterated character by character as a list of audiences.
        if isinstance(self.audiences, str) or not self.audiences:
            raise ValueError("audiences must be a non-empty tuple of strings")
        unsupported = sorted(set(self.algorithms) - _KEY_SHAPES.keys())
        if unsupported or not self.algorithms:
            raise ValueError(f"unsupported algorithms: {unsupported or 'none given'}")
        if not self.tenant_claim:
            raise ValueError("tenant_claim must be set")
        if self.leeway_seconds < 0:
            raise ValueError("leeway_seconds must not be negative")

    @property
    def discovery_url(self) -> str:
        # OIDC Discovery 1.0 section 4: drop one trailing "/" before appending the well-known path.
        base = self.issuer[:-1] if self.issuer.endswith("/") else self.issuer
        return f"{base}/.well-known/openid-configuration"


@dataclass(frozen=True, kw_only=True)
class VerifiedToken:
    """Claims of a token whose signature, issuer, audience and lifetime all checked out."""

    issuer: str
    subject: str
    audience: str
    # Kept out of repr so that logging a VerifiedToken does not dump personal data.
    claims: dict[str, Any] = field(repr=False, hash=False)
    tenant_external_id: str
    roles: tuple[str, ...]
    email: str | None
    name: str | None
    expires_at: int


@dataclass(frozen=True, kw_only=True)
class SigningKey:
    """One public key from a JWKS, parsed once when the set is fetched."""

    kid: str
    kty: str
    crv: str | None
    alg: str | None
    use: str | None
    key_ops: tuple[str, ...] | None
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    def usable_for(self, algorithm: str) -> bool:
        kty, crv = _KEY_SHAPES[algorithm]
        return (
            self.kty == kty
            and self.crv == crv
            and self.alg in (None, algorithm)
            and self.use in (None, "sig")
            and (self.key_ops is None or "verify" in self.key_ops)
        )


class _FetchError(Exception):
    """Discovery or JWKS could not be fetched or made no sense."""


# The JWKS endpoint is configured (or discovered from configuration); following a redirect
# would let whoever answers with a 3xx choose the keys we trust.
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def urllib_fetch(url: str, *, timeout: float) -> bytes:
    """GET ``url`` and return the body; raises on HTTP errors, redirects and huge bodies."""
    # build_opener also handles file: and ftp:, so the scheme must be pinned explicitly.
    if not _is_http_url(url):
        raise ValueError(f"refusing to fetch non-HTTP URL {url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with _OPENER.open(request, timeout=timeout) as response:
        body: bytes = response.read(_MAX_DOCUMENT_BYTES + 1)
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise ValueError(f"response from {url} exceeds {_MAX_DOCUMENT_BYTES} bytes")
    return body


@dataclass
class _IssuerKeys:
    """Per-issuer cache state. ``keys`` is replaced wholesale, so readers need no lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: Mapping[str, tuple[SigningKey, ...]] = field(default_factory=dict)
    discovered_jwks_uri: str | None = None
    loaded_at: float | None = None
    attempted_at: float | None = None


class JWKSCache:
    """Thread-safe per-issuer cache of signing keys.

    Keys that have been fetched once stay usable for as long as the process lives; after
    ``soft_ttl`` a refresh is attempted, and a failed refresh keeps the old keys. Outbound
    requests for an issuer (refreshes and unknown-``kid`` refetches alike) happen at most once
    per ``min_refetch_interval``, so random ``kid`` values cannot turn us into an amplifier.
    """

    def __init__(
        self,
        *,
        fetch: Callable[[str], bytes] | None = None,
        timeout: float = 2.0,
        soft_ttl: float = 3600.0,
        min_refetch_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch or functools.partial(urllib_fetch, timeout=timeout)
        self._soft_ttl = soft_ttl
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._states: dict[str, _IssuerKeys] = {}
        self._states_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._fetch_count = 0

    @property
    def fetch_count(self) -> int:
        """Outbound HTTP requests attempted so far (successful or not)."""
        return self._fetch_count

    def keys_for(self, *, issuer: IssuerConfig, kid: str) -> tuple[SigningKey, ...]:
        """Keys published under ``kid``; empty when unknown even after an allowed refetch."""
        state = self._state(issuer.issuer)
        if self._due_for_refresh(state):
            self._refresh_unless_busy(issuer, state)
        known = state.keys.get(kid, ())
        if known:
            return known
        return self._refetch_for_unknown_kid(issuer, state, kid)

    def refresh(self, *, issuer: IssuerConfig) -> bool:
        """Fetch now, ignoring TTL and rate limit (e.g. to warm up at startup)."""
        state = self._state(issuer.issuer)
        with state.lock:
            return self._load(issuer, state)

    def _state(self, issuer: str) -> _IssuerKeys:
        state = self._states.get(issuer)
        if state is None:
            with self._states_lock:
                state = self._states.setdefault(issuer, _IssuerKeys())
        return state

    def _may_fetch(self, state: _IssuerKeys) -> bool:
        last = state.attempted_at
        return last is None or self._clock() - last >= self._min_refetch_interval

    def _due_for_refresh(self, state: _IssuerKeys) -> bool:
        loaded = state.loaded_at
        stale = loaded is None or self._clock() - loaded >= self._soft_ttl
        return stale and self._may_fetch(state)

    def _refresh_unless_busy(self, issuer: IssuerConfig, state: _IssuerKeys) -> None:
        # If another thread is already refreshing, serve the cached keys instead of queueing.
        if not state.lock.acquire(blocking=False):
            return
        try:
            if self._due_for_refresh(state):
                self._load(issuer, state)
        finally:
            state.lock.release()

    def _refetch_for_unknown_kid(
        self, issuer: IssuerConfig, state: _IssuerKeys, kid: str
    ) -> tuple[SigningKey, ...]:
        # Blocking on purpose: requests carrying a freshly rotated kid wait for the one
        # in-flight fetch rather than each starting their own.
        with state.lock:
            known = state.keys.get(kid, ())
            if not known and self._may_fetch(state):
                self._load(issuer, state)
                known = state.keys.get(kid, ())
            return known

    def _load(self, issuer: IssuerConfig, state: _IssuerKeys) -> bool:
        """Fetch the key set; on any failure keep the previous keys (caller holds the lock)."""
        state.attempted_at = self._clock()
        try:
            jwks_uri = issuer.jwks_uri or state.discovered_jwks_uri or self._discover(issuer)
            keys = _parse_jwks(self._get_json(jwks_uri))
        except _FetchError as exc:
            logger.warning("signing keys for %s not refreshed: %s", issuer.issuer, exc)
            # The JWKS may have moved; look at the discovery document again next time.
            state.discovered_jwks_uri = None
            return False
        if issuer.jwks_uri is None:
            state.discovered_jwks_uri = jwks_uri
        state.keys = keys
        state.loaded_at = state.attempted_at
        return True

    def _discover(self, issuer: IssuerConfig) -> str:
        document = self._get_json(issuer.discovery_url)
        if not isinstance(document, dict):
            raise _FetchError("discovery document is not a JSON object")
        # OIDC Discovery 1.0 section 4.3: the document must name exactly the issuer we asked
        # about, otherwise one provider's discovery could hand us another's keys.
        if document.get("issuer") != issuer.issuer:
            raise _FetchError("discovery document names a different issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _is_http_url(jwks_uri):
            raise _FetchError("discovery document has no usable jwks_uri")
        if _scheme(issuer.issuer) == "https" and _scheme(jwks_uri) != "https":
            raise _FetchError("discovery document downgrades jwks_uri to plain http")
        return jwks_uri

    def _get_json(self, url: str) -> Any:
        with self._count_lock:
            self._fetch_count += 1
        try:
            return json.loads(self._fetch(url))
        # The fetch function is pluggable; whatever it raises means "endpoint unavailable",
        # which must never break verification with keys already cached.
        except Exception as exc:
            raise _FetchError(f"{url}: {exc}") from exc


class TokenVerifier:
    """Verifies bearer JWTs locally; the network is touched only to (re)load issuer keys."""

    def __init__(
        self,
        *,
        issuers: Callable[[str], IssuerConfig | None],
        jwks: JWKSCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = issuers
        self._jwks = jwks
        self._clock = clock

    def verify(self, token: str) -> VerifiedToken:
        """Return the verified token or raise InvalidToken / TenantClaimError."""
        header, unverified_claims = _split_unverified(token)
        _check_header(header)
        config = self._issuer_config(unverified_claims)
        algorithm = header["alg"]
        if algorithm not in config.algorithms:
            raise InvalidToken("algorithm not allowed")
        key = self._signing_key(config, kid=header["kid"], algorithm=algorithm)
        claims = _decode(token, key=key, algorithm=algorithm, config=config)
        _check_lifetime(claims, now=self._clock(), leeway=config.leeway_seconds)
        return _verified_token(claims, config=config)

    def _issuer_config(self, unverified_claims: dict[str, Any]) -> IssuerConfig:
        # Only used to pick the configuration; the real iss check happens with the signature.
        iss = unverified_claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise InvalidToken("missing issuer")
        config = self._issuers(iss)
        # Unknown issuers are refused before any key lookup, so they never cause a fetch.
        if config is None or config.issuer != iss:
            raise InvalidToken("unknown issuer")
        return config

    def _signing_key(self, config: IssuerConfig, *, kid: str, algorithm: str) -> SigningKey:
        candidates = self._jwks.keys_for(issuer=config, kid=kid)
        if not candidates:
            raise InvalidToken("unknown signing key")
        for key in candidates:
            if key.usable_for(algorithm):
                return key
        raise InvalidToken("signing key not usable with this algorithm")


def parse_bearer(header_value: str | None) -> str | None:
    """Token from an Authorization header; None when absent or not a Bearer credential."""
    if not header_value:
        return None
    # Anything that starts like "Bearer" was meant as one, so sloppy variants are errors
    # rather than silently treated as "no credentials".
    if header_value[:6].lower() != "bearer":
        return None
    separator, token = header_value[6:7], header_value[7:]
    if separator != " " or not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed authorization header")
    return token


def _split_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if (
        not isinstance(token, str)
        or len(token) > _MAX_TOKEN_LENGTH
        or not _COMPACT_JWS.fullmatch(token)
    ):
        raise InvalidToken("malformed token")
    header_segment, payload_segment, _ = token.split(".")
    return _json_segment(header_segment), _json_segment(payload_segment)


def _json_segment(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):
        raise InvalidToken("malformed token") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed token")
    return value


def _check_header(header: dict[str, Any]) -> None:
    if any(name in header for name in _KEY_BEARING_HEADERS):
        raise InvalidToken("key references in token header not allowed")
    # We implement no extensions, so RFC 7515 section 4.1.11 requires refusing any "crit".
    if "crit" in header:
        raise InvalidToken("critical header parameters not supported")
    # Covers "none" and every HS*; the issuer's own allow-list is applied once it is known.
    if header.get("alg") not in _KEY_SHAPES:
        raise InvalidToken("algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("missing key id")


def _decode(token: str, *, key: SigningKey, algorithm: str, config: IssuerConfig) -> dict[str, Any]:
    try:
        return jwt.decode(
            token,
            key=key.public_key,
            algorithms=[algorithm],
            audience=list(config.audiences),
            issuer=config.issuer,
            options={
                "require": _REQUIRED_CLAIMS,
                # PyJWT reads the wall clock itself; lifetime is checked against our clock.
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(_reason_for(exc)) from exc


def _reason_for(exc: jwt.PyJWTError) -> str:
    # Checked in order: InvalidSignatureError is itself a DecodeError.
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim: {exc.claim}"
    reasons: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
        (jwt.InvalidSignatureError, "invalid signature"),
        (jwt.InvalidAudienceError, "invalid audience"),
        (jwt.InvalidIssuerError, "invalid issuer"),
        (jwt.InvalidKeyError, "signing key rejected"),
        (jwt.DecodeError, "malformed token"),
    )
    for error_type, reason in reasons:
        if isinstance(exc, error_type):
            return reason
    return "invalid token"


def _check_lifetime(claims: dict[str, Any], *, now: float, leeway: float) -> None:
    if _numeric_date(claims, "exp") <= now - leeway:
        raise InvalidToken("token expired")
    if _numeric_date(claims, "iat") > now + leeway:
        raise InvalidToken("token issued in the future")
    if "nbf" in claims and _numeric_date(claims, "nbf") > now + leeway:
        raise InvalidToken("token not yet valid")


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    # bool is an int subclass, and JSON NaN compares false with everything, which would make
    # every lifetime comparison pass.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidToken(f"invalid {name} claim")
    return value


def _verified_token(claims: dict[str, Any], *, config: IssuerConfig) -> VerifiedToken:
    subject = claims["sub"]  # PyJWT has already checked it is a string
    if not subject:
        raise InvalidToken("invalid subject")
    tenant = _tenant_external_id(claims, config=config, subject=subject)
    return VerifiedToken(
        issuer=config.issuer,
        subject=subject,
        audience=_matched_audience(claims["aud"], config.audiences),
        claims=claims,
        tenant_external_id=tenant,
        roles=_roles(claims, config.roles_claim),
        email=_optional_str(claims.get("email")),
        name=_optional_str(claims.get("name")),
        expires_at=int(claims["exp"]),
    )


def _matched_audience(aud: str | list[str], audiences: tuple[str, ...]) -> str:
    presented = [aud] if isinstance(aud, str) else aud
    # PyJWT guaranteed at least one overlap; report the first in configured order.
    return next(audience for audience in audiences if audience in presented)


def _tenant_external_id(claims: dict[str, Any], *, config: IssuerConfig, subject: str) -> str:
    # Exact key lookup and no normalisation: the value is matched case-sensitively later, and
    # quietly fixing it up could map a token onto a tenant it was never issued for.
    reason = _tenant_problem(claims, config.tenant_claim)
    if reason is not None:
        raise TenantClaimError(reason, issuer=config.issuer, subject=subject)
    return claims[config.tenant_claim]


def _tenant_problem(claims: dict[str, Any], claim: str) -> str | None:
    if claim not in claims:
        return "tenant claim missing"
    value = claims[claim]
    if not isinstance(value, str):
        return "tenant claim is not a string"
    if not value:
        return "tenant claim is empty"
    if value != value.strip():
        return "tenant claim has surrounding whitespace"
    # Category C covers control, format (zero-width, bidi overrides) and unassigned code
    # points: all ways to make two identifiers look alike.
    if any(unicodedata.category(char).startswith("C") for char in value):
        return "tenant claim contains control characters"
    return None


def _roles(claims: dict[str, Any], roles_claim: str | None) -> tuple[str, ...]:
    if roles_claim is None:
        return ()
    value = _claim_at(claims, roles_claim)
    if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
        return ()
    return tuple(value)


def _claim_at(claims: dict[str, Any], path: str) -> Any:
    # Namespaced claims ("https://example.com/roles") contain dots themselves, so the literal
    # key wins; only when it is absent is the path walked through nested objects.
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def _parse_jwks(document: Any) -> dict[str, tuple[SigningKey, ...]]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _FetchError("JWKS document has no keys list")
    by_kid: dict[str, list[SigningKey]] = {}
    for entry in document["keys"]:
        key = _parse_jwk(entry)
        if key is not None:
            by_kid.setdefault(key.kid, []).append(key)
    # An empty set is far more likely a broken deployment than a real revocation of all keys.
    if not by_kid:
        raise _FetchError("JWKS document has no usable signing keys")
    return {kid: tuple(keys) for kid, keys in by_kid.items()}


_KEY_LOADERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
}


def _parse_jwk(entry: Any) -> SigningKey | None:
    """A usable public key, or None (logged) for anything we will not verify with."""
    if not isinstance(entry, dict):
        return None
    kid, kty = entry.get("kid"), entry.get("kty")
    if not isinstance(kid, str) or not kid or kty not in _KEY_LOADERS:
        return None
    if "d" in entry:
        # A published private key means anyone can mint tokens; refuse it loudly.
        logger.error("JWKS publishes private key material for kid %r; ignoring it", kid)
        return None
    if not _valid_jwk_metadata(entry):
        logger.warning("ignoring JWK %r with malformed alg/use/key_ops", kid)
        return None
    try:
        public_key = _KEY_LOADERS[kty](entry)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        logger.warning("ignoring unparseable JWK %r: %s", kid, exc)
        return None
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < _MIN_RSA_BITS:
        logger.warning("ignoring %d-bit RSA JWK %r", public_key.key_size, kid)
        return None
    key_ops = entry.get("key_ops")
    return SigningKey(
        kid=kid,
        kty=kty,
        crv=entry.get("crv") if kty == "EC" else None,
        alg=entry.get("alg"),
        use=entry.get("use"),
        key_ops=tuple(key_ops) if key_ops is not None else None,
        public_key=public_key,
    )


def _valid_jwk_metadata(entry: dict[str, Any]) -> bool:
    # Garbage in these fields must not be read as "absent", which would widen what the key
    # may be used for.
    for name in ("alg", "use"):
        if name in entry and not isinstance(entry[name], str):
            return False
    if "key_ops" not in entry:
        return True
    key_ops = entry["key_ops"]
    return isinstance(key_ops, list) and all(isinstance(op, str) for op in key_ops)


def _is_http_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
