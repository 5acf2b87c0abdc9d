"""Who is calling: the resolver the tenant middleware asks (settings.TENANCY_PRINCIPAL_RESOLVER).

A bearer token (accounts.bearer) or else the browser session (accounts.principal); sign-in
pages run without a principal.
"""

from __future__ import annotations

from django.http import HttpRequest

from accounts.bearer import bearer_principal
from accounts.errors import InvalidToken, TokenRejected
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
    user = getattr(request, "user", None)
    session_user = user if user is not None and user.is_authenticated else None
    return bearer_principal(token=token, session_user=session_user)
