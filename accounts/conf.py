"""OIDC configuration rules shared by settings.py, the admin and the provider registry."""

from __future__ import annotations

import ipaddress
import urllib.parse
from pathlib import Path

from accounts.errors import InsecureIssuer

PROVIDER_KINDS = ("generic", "keycloak", "auth0")
DEFAULT_TENANT_CLAIM = "tenant_id"
DEFAULT_ADMIN_ROLE = "tenant-admin"
KEYCLOAK_ROLES_CLAIM = "realm_access.roles"
AUTH0_ORGANIZATION_CLAIM = "org_id"
DEFAULT_DEV_PORT = 8000
# `make run` writes the port it serves on here (in the run directory), so that
# `manage.py tenants token` in another shell names the issuer of that server.
DEV_PORT_FILE = "port"


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: only this machine can answer there."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_issuer_url(url: str) -> str:
    """Return `url` if tokens may come from it: https anywhere, plain http only on loopback.

    Keys fetched over plain http can be swapped by anyone on the path, which would let them
    mint tokens; on the loopback interface there is no path (tests, local development).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InsecureIssuer(f"issuer must be an http(s) URL with a host: {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InsecureIssuer(f"issuer must not carry credentials, a query or a fragment: {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InsecureIssuer(
            f"plain-http issuer {url!r} refused: use https (http is accepted only for "
            "127.0.0.0/8, ::1 and localhost)"
        )
    return url


def auth0_namespace(value: str) -> str:
    """`ameide.example` or `https://ameide.example` -> `https://ameide.example/`."""
    value = value.strip()
    if not value:
        return ""
    if "://" not in value:
        value = f"https://{value}"
    return value if value.endswith("/") else value + "/"


def claim_defaults(*, provider: str, namespace: str = "", organizations: bool = False) -> dict:
    """Tenant claim, roles claim and admin role a provider kind uses unless told otherwise."""
    if provider not in PROVIDER_KINDS:
        raise ValueError(f"OIDC_PROVIDER must be one of {', '.join(PROVIDER_KINDS)}: {provider!r}")
    if provider == "keycloak":
        # A "User Attribute" protocol mapper puts tenant_id at the top level; realm roles
        # always arrive as realm_access.roles.
        return {
            "tenant_claim": DEFAULT_TENANT_CLAIM,
            "roles_claim": KEYCLOAK_ROLES_CLAIM,
            "admin_role": DEFAULT_ADMIN_ROLE,
        }
    if provider == "auth0":
        # Auth0 drops non-namespaced custom claims from tokens, so an Action adds them under a
        # URL namespace; Organizations put their id into org_id by themselves.
        ns = auth0_namespace(namespace)
        if not organizations and not ns:
            raise ValueError("OIDC_PROVIDER=auth0 needs OIDC_CLAIM_NAMESPACE (or organizations)")
        return {
            "tenant_claim": AUTH0_ORGANIZATION_CLAIM if organizations else f"{ns}tenant_id",
            "roles_claim": f"{ns}roles" if ns else "",
            "admin_role": DEFAULT_ADMIN_ROLE,
        }
    return {"tenant_claim": DEFAULT_TENANT_CLAIM, "roles_claim": "", "admin_role": ""}


def development_port(*, port: int | None, run_dir: Path) -> int:
    """The port of the development server: PORT if set, else the one `make run` recorded."""
    if port:
        return port
    try:
        recorded = int((run_dir / DEV_PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return DEFAULT_DEV_PORT
    return recorded if 0 < recorded < 65536 else DEFAULT_DEV_PORT
