"""Who is calling: the resolver the tenant middleware asks (settings.TENANCY_PRINCIPAL_RESOLVER).

A bearer token (accounts.bearer) or else the browser session (accounts.principal); sign-in
pages run without a principal.
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.bearer import bearer_principal
from accounts.errors import InvalidToken, TokenRejected
from accounts.models import User
from accounts.principal import TENANTLESS_PATH_PREFIXES, Principal, session_principal
from accounts.tokens import parse_bearer


def resolve_principal(request: HttpRequest) -> Principal | None:
    """The request's principal, or None for an anonymous (or tenant-less) caller."""
    if request.path.startswith(TENANTLESS_PATH_PREFIXES):
        return None
    try:
        token = parse_bearer(request.headers.get("Authorization"))
    except InvalidToken as exc:
        raise TokenRejected(exc.reason) from None
    if token is None:
        return session_principal(request)
    return bearer_principal(token=token, session_user=session_user(request))


def session_user(request: HttpRequest) -> User | None:
    """The signed-in user of the browser session the request carries, or None.

    A request without a session cookie has no session: the lazy `request.user` is not asked,
    which would build a session store and look the user up for nothing (most API calls
    carry a token and no cookie). With a cookie, the user is read as before, so a token of
    anyone else is still refused (bearer_principal)."""
    session = getattr(request, "session", None)
    if session is not None and session.session_key is None:
        return None
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None
