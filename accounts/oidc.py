"""Browser sign-in with mozilla-django-oidc (authorization code + PKCE) against OIDC_ISSUER.

The library drives the redirects, state, nonce and PKCE. What we replace: endpoints come
from the provider's discovery document instead of five settings; the ID token is verified by
accounts.tokens (issuer, audience = our client id, algorithm allow-list, lifetime, cached
keys) instead of the library's per-login JWKS download; and the user is found by (issuer,
subject) and admitted exactly like an API token (accounts.admission), never matched by
e-mail, which is what the library does by default.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from dataclasses import dataclass

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.views import LoginView
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponse
from django.shortcuts import resolve_url
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.admission import admit
from accounts.bearer import jwks_cache
from accounts.conf import check_issuer_url
from accounts.errors import InsecureIssuer, PrincipalRejected, ProviderUnavailable, SignInRefused
from accounts.principal import SESSION_TENANT_KEY
from accounts.providers import environment_policy
from accounts.tokens import (
    InvalidToken,
    IssuerConfig,
    TenantClaimError,
    TokenVerifier,
    VerifiedToken,
    urllib_fetch,
)

logger = logging.getLogger(__name__)

BACKEND_PATH = "accounts.oidc.TenantOIDCBackend"
_DISCOVERY_TTL_SECONDS = 3600.0
_PROVIDER_LABELS = {"keycloak": "Keycloak", "auth0": "Auth0"}


def browser_sign_in_enabled() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def sign_in_label() -> str:
    return settings.OIDC_SIGN_IN_LABEL or _PROVIDER_LABELS.get(
        settings.OIDC_PROVIDER, "single sign-on"
    )


@dataclass(frozen=True, kw_only=True)
class ProviderEndpoints:
    authorization: str
    token: str
    end_session: str | None


_discovery_lock = threading.Lock()
_discovered: dict[str, tuple[ProviderEndpoints, float]] = {}


def provider_endpoints() -> ProviderEndpoints:
    """Endpoints of OIDC_ISSUER from its discovery document, fetched once an hour at most."""
    issuer = settings.OIDC_ISSUER
    cached = _discovered.get(issuer)
    if cached is not None and time.monotonic() - cached[1] < _DISCOVERY_TTL_SECONDS:
        return cached[0]
    with _discovery_lock:
        endpoints = _discover(issuer)
        _discovered[issuer] = (endpoints, time.monotonic())
    return endpoints


def _discover(issuer: str) -> ProviderEndpoints:
    url = IssuerConfig(issuer=issuer, audiences=("-",), tenant_claim="-").discovery_url
    try:
        document = json.loads(urllib_fetch(url, timeout=settings.OIDC_TIMEOUT))
    except Exception as exc:  # any failure means "provider unavailable" to the browser
        raise ProviderUnavailable(f"{url}: {exc}") from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise ProviderUnavailable("discovery document names a different issuer")
    try:
        return ProviderEndpoints(
            authorization=_endpoint(document, "authorization_endpoint"),
            token=_endpoint(document, "token_endpoint"),
            end_session=_endpoint(document, "end_session_endpoint", required=False),
        )
    except InsecureIssuer as exc:
        raise ProviderUnavailable(str(exc)) from None


def _endpoint(document: dict, name: str, *, required: bool = True) -> str | None:
    value = document.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProviderUnavailable(f"discovery document has no {name}")
    # The code and the client secret travel to the token endpoint: same rule as issuers.
    return check_issuer_url(value)


def id_token_config() -> IssuerConfig:
    """How ID tokens of the browser provider are checked: our client id is the audience."""
    return IssuerConfig(
        issuer=settings.OIDC_ISSUER,
        audiences=(settings.OIDC_RP_CLIENT_ID,),
        tenant_claim=settings.OIDC_TENANT_CLAIM,
        roles_claim=settings.OIDC_ROLES_CLAIM or None,
        leeway_seconds=settings.OIDC_LEEWAY_SECONDS,
    )


class TenantOIDCBackend(OIDCAuthenticationBackend):
    """Completes the code flow: ID token verified locally, user by (iss, sub), tenant admitted."""

    def __init__(self, *args, **kwargs) -> None:
        # The parent reads endpoint settings here; ours are discovered when a login happens.
        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        # Called for every authenticate() of the site, password logins included: touch the
        # provider only for a real callback.
        if request is None or not browser_sign_in_enabled():
            return None
        if not (request.GET.get("code") and request.GET.get("state")):
            return None
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        try:
            self.OIDC_OP_TOKEN_ENDPOINT = provider_endpoints().token
            return super().authenticate(request, **kwargs)
        except SignInRefused as exc:
            messages.error(request, exc.message, fail_silently=True)
        except (ProviderUnavailable, requests.RequestException, SuspiciousOperation) as exc:
            logger.warning("browser sign-in failed: %s", exc)
            messages.error(
                request,
                "Sign-in failed: the identity provider's answer was refused.",
                fail_silently=True,
            )
        return None

    def verify_token(self, token, **kwargs) -> VerifiedToken:
        config = id_token_config()
        verifier = TokenVerifier(
            issuers=lambda iss: config if iss == config.issuer else None, jwks=jwks_cache()
        )
        try:
            verified = verifier.verify(token or "")
        except InvalidToken as exc:
            raise SuspiciousOperation(f"ID token refused: {exc.reason}") from None
        except TenantClaimError as exc:
            raise SignInRefused(f"Sign-in refused: {exc.reason}.") from None
        if verified.claims.get("nonce") != kwargs.get("nonce"):
            raise SuspiciousOperation("ID token nonce does not match")
        aud = verified.claims["aud"]
        # OIDC Core 3.1.3.7: with several audiences, azp must name us.
        if (
            isinstance(aud, list)
            and len(aud) > 1
            and verified.claims.get("azp") != config.audiences[0]
        ):
            raise SuspiciousOperation("ID token azp does not name this client")
        return verified

    def get_or_create_user(self, access_token, id_token, payload: VerifiedToken):
        policy = environment_policy()
        if policy is None or policy.issuer != payload.issuer:
            raise SuspiciousOperation("ID token of a provider that is not configured")
        try:
            principal = admit(token=payload, policy=policy, via="session")
        except PrincipalRejected as exc:
            raise SignInRefused(f"Sign-in refused: {exc.detail}") from None
        user = principal.user
        user.signed_in_tenant = principal.tenant  # read by CallbackView.login_success
        return user

    def get_userinfo(self, access_token, id_token, payload):  # pragma: no cover - unused
        # Never called (get_or_create_user is ours): the verified ID token has every claim.
        return payload.claims


class AuthenticateView(OIDCAuthenticationRequestView):
    """Starts the code flow (state, nonce, PKCE S256); 404 when browser sign-in is off."""

    def __init__(self, *args, **kwargs) -> None:
        View.__init__(self, *args, **kwargs)  # the parent would read endpoint settings

    def get(self, request):
        if not browser_sign_in_enabled():
            raise Http404("Browser sign-in is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_endpoints().authorization
        except ProviderUnavailable as exc:
            logger.warning("identity provider unavailable: %s", exc)
            return HttpResponse("The identity provider is unavailable.", status=503)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)

    def get_extra_params(self, request) -> dict:
        params = dict(super().get_extra_params(request))
        if settings.OIDC_PROVIDER == "auth0" and settings.OIDC_AUDIENCE:
            # Auth0 issues a JWT access token for our API only when asked for its audience.
            params.setdefault("audience", settings.OIDC_AUDIENCE[0])
        return params


class CallbackView(OIDCAuthenticationCallbackView):
    """Finishes the code flow and keeps the ID token's tenant in the session."""

    def get(self, request):
        if not browser_sign_in_enabled():
            raise Http404("Browser sign-in is not configured.")
        return super().get(request)

    def login_success(self):
        response = super().login_success()
        # After auth.login(), which may have flushed the session of a previous user.
        self.request.session[SESSION_TENANT_KEY] = self.user.signed_in_tenant.pk
        return response


def provider_logout_url(request) -> str:
    """Where logout sends the browser: the provider's end-session endpoint, then back here."""
    back = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    if request.session.get(BACKEND_SESSION_KEY) != BACKEND_PATH or not browser_sign_in_enabled():
        return back  # a local-password session: nothing to end at the provider
    try:
        end_session = provider_endpoints().end_session
    except ProviderUnavailable:
        return back
    if end_session:
        params = {"client_id": settings.OIDC_RP_CLIENT_ID, "post_logout_redirect_uri": back}
        id_token = request.session.get("oidc_id_token")
        if id_token:
            params["id_token_hint"] = id_token
    elif settings.OIDC_PROVIDER == "auth0":
        # Auth0 without "RP-Initiated Logout" enabled publishes no end_session_endpoint.
        end_session = settings.OIDC_ISSUER.rstrip("/") + "/v2/logout"
        params = {"client_id": settings.OIDC_RP_CLIENT_ID, "returnTo": back}
    else:
        return back
    return f"{end_session}?{urllib.parse.urlencode(params)}"


class SignInView(LoginView):
    """The login page: "Sign in with <provider>" and the local password form."""

    template_name = "registration/login.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = browser_sign_in_enabled()
        context["oidc_label"] = sign_in_label()
        return context
