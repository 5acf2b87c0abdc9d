"""The API's bearer tokens: one process-wide verifier, local checks, no provider call per request."""

from __future__ import annotations

import threading

import jwt
from django.conf import settings
from django.core.signals import setting_changed

from accounts import admission_cache
from accounts.admission import admit
from accounts.errors import InvalidToken, PrincipalRejected, TenantClaimError, TokenRejected
from accounts.models import User
from accounts.principal import Principal
from accounts.providers import policy_for, trusted_issuers
from accounts.tokens import (
    IssuerConfig,
    JWKSCache,
    TokenVerifier,
    VerifiedToken,
)

_lock = threading.Lock()
_state: tuple[TokenVerifier, JWKSCache] | None = None


def _verifier_and_keys() -> tuple[TokenVerifier, JWKSCache]:
    global _state
    state = _state
    if state is None:
        with _lock:
            if _state is None:
                jwks = JWKSCache(
                    timeout=settings.OIDC_JWKS_TIMEOUT_SECONDS,
                    soft_ttl=settings.OIDC_JWKS_SOFT_TTL_SECONDS,
                    min_refetch_interval=settings.OIDC_JWKS_MIN_REFETCH_SECONDS,
                )
                _state = (TokenVerifier(issuers=_issuer_config, jwks=jwks), jwks)
            state = _state
    return state


def token_verifier() -> TokenVerifier:
    """The process-wide verifier; its JWKS cache is what keeps provider calls at zero."""
    return _verifier_and_keys()[0]


def jwks_cache() -> JWKSCache:
    """The process-wide signing-key cache (shared with browser sign-in's ID tokens)."""
    return _verifier_and_keys()[1]


def _issuer_config(issuer: str) -> IssuerConfig | None:
    policy = policy_for(issuer)
    return policy.config if policy is not None else None


def verify(token: str) -> VerifiedToken:
    """Verify an API token; raises TokenRejected (401) or PrincipalRejected (403)."""
    try:
        return token_verifier().verify(token)
    except InvalidToken as exc:
        hint = _issuer_hint(token) if exc.reason == "unknown issuer" else ""
        raise TokenRejected(exc.reason, hint=hint) from None
    except TenantClaimError as exc:
        raise PrincipalRejected(
            status=403, code="tenant_claim_invalid", detail=f"Tenant claim refused: {exc.reason}."
        ) from None


def _issuer_hint(token: str) -> str:
    """With DEBUG on, which issuer the token names and which this server trusts (a token of
    the development issuer minted for another port is the usual case). Never in production:
    the allow-list is nobody else's business there."""
    if not settings.DEBUG:
        return ""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        issuer = None
    trusted = ", ".join(trusted_issuers()) or "none"
    return f"The token's issuer is {issuer!r}; this server trusts: {trusted}."


def bearer_principal(*, token: str, session_user: User | None = None) -> Principal:
    """The principal of an API token, or a refusal (401 untrusted token, 403 tenant refused).

    `session_user` is the user of a browser session the same request carries: a token of
    anyone else is refused before anything is written, whatever the token says.
    """
    remembered = admission_cache.cache()
    key = admission_cache.token_key(token)
    hit = remembered.get(key) if remembered is not None else None
    if hit is not None:
        verified, principal = hit
    else:
        verified = verify(token)
        principal = None
    if session_user is not None and (session_user.issuer, session_user.subject) != (
        verified.issuer,
        verified.subject,
    ):
        raise PrincipalRejected(
            status=403,
            code="conflicting_credentials",
            detail="The session and the bearer token belong to different users.",
        )
    if principal is not None:
        return principal
    policy = policy_for(verified.issuer)
    if policy is None:  # the provider was disabled a moment ago
        raise TokenRejected("unknown issuer")
    principal = admit(token=verified, policy=policy, via="bearer")
    if remembered is not None:
        # Until the token expires, or anything that decides admission changes (the cache's
        # listener empties it on PostgreSQL's signal), whichever comes first.
        remembered.put(key, (verified, principal), expires_at=verified.expires_at)
    return principal


def reset() -> None:
    """Drop the verifier and its key cache (settings changed; tests)."""
    global _state
    with _lock:
        _state = None


def _settings_changed(*, setting: str, **_kwargs) -> None:
    if setting.startswith(("OIDC_JWKS_", "OIDC_LEEWAY")):
        reset()


def connect_signals() -> None:
    setting_changed.connect(_settings_changed, dispatch_uid="accounts.bearer.settings")
