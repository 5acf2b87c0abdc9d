"""Fixtures of the sign-in tests: the test OpenID provider (tests/idp, Node `oidc-provider`) run
as a Keycloak-like and an Auth0-like issuer on 127.0.0.1, a small key server whose private key
the tests hold (for tokens no real provider would sign), and clean per-process caches."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.keyserver import AUDIENCE, KeyServer

IDP_DIR = Path(__file__).resolve().parents[1] / "idp"
CLIENT_ID = "ameide"
CLIENT_SECRET = "ameide-secret"
NAMESPACE = "https://ameide.example/"
START_TIMEOUT_SECONDS = 30


class TestIdp:
    """A running tests/idp server: tokens through its custom grant, and its /__test/ switches."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, process: subprocess.Popen, info: dict[str, Any]) -> None:
        self.process = process
        self.info = info
        self.issuer: str = info["issuer"]
        self.mode: str = info["mode"]
        self.base = f"http://127.0.0.1:{info['port']}"
        self.tenant_claim: str = info["tenant_claim"]

    # --- control ------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.base}/__test/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def add_users(self, *users: dict[str, Any]) -> None:
        self._control("POST", "users", list(users))

    def stats(self) -> dict[str, int]:
        return self._control("GET", "stats")

    def reset_stats(self) -> None:
        self._control("POST", "stats/reset")

    def rotate(self, *, keep_old: bool = True) -> str:
        return self._control("POST", "rotate", {"keep_old": keep_old})["kid"]

    def jwks_down(self, down: bool = True) -> None:
        self._control("POST", "jwks_down", {"down": down})

    def public_jwks(self) -> list[dict[str, Any]]:
        response = requests.get(self.info["jwks_uri"], timeout=10)
        response.raise_for_status()
        return response.json()["keys"]

    # --- tokens -------------------------------------------------------------------------
    def tokens(self, sub: str, **params: Any) -> dict[str, Any]:
        """Mint tokens for a configured user (the IdP's test grant; no browser)."""
        data = {"grant_type": self.info["custom_grant"], "sub": sub, **params}
        response = requests.post(
            self.info["token_endpoint"], data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def access_token(self, sub: str, **params: Any) -> str:
        return self.tokens(sub, **params)["access_token"]

    def user(self, sub: str, *, tenant: Any = "alpha", **claims: Any) -> dict[str, Any]:
        """A user record as the IdP takes it; `tenant=...` (Ellipsis) leaves the claim out."""
        record = {"sub": sub, "email": f"{sub}@example.com", "name": sub.title(), **claims}
        if tenant is not ...:
            record["tenant"] = tenant
        return record


def _start_idp(mode: str, *extra: str) -> TestIdp:
    node = shutil.which("node")
    if node is None or not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("Node.js and tests/idp/node_modules are needed (run `make idp`)")
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below or by _stop
    process = subprocess.Popen(
        [node, str(IDP_DIR / "server.mjs"), "--port", "0", "--mode", mode, "--watch-stdin", *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=IDP_DIR,
    )
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_SECONDS)
    line = process.stdout.readline() if ready else b""
    if not line:
        _stop(process)
        log.seek(0)
        diagnostics = log.read().decode(errors="replace")
        log.close()
        raise RuntimeError(f"test IdP ({mode}) did not start:\n{diagnostics}")
    log.close()  # the child keeps its own handle
    return TestIdp(process, json.loads(line))


def _stop(process: subprocess.Popen) -> None:
    if process.stdin:
        process.stdin.close()  # --watch-stdin: the server exits on EOF
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout:
        process.stdout.close()


@pytest.fixture(scope="session")
def keycloak_idp() -> Iterator[TestIdp]:
    idp = _start_idp("keycloak", "--realm", "ameide")
    yield idp
    _stop(idp.process)


@pytest.fixture(scope="session")
def auth0_idp() -> Iterator[TestIdp]:
    idp = _start_idp("auth0", "--namespace", NAMESPACE)
    yield idp
    _stop(idp.process)


@pytest.fixture(autouse=True)
def _fresh_identity_caches() -> Iterator[None]:
    """Each test starts with cold key caches and re-reads providers, like a new process."""
    from accounts import admission, bearer, oidc, providers

    def clear() -> None:
        admission.reset()
        bearer.reset()
        providers.registry.reset()
        oidc._discovered.clear()

    clear()
    yield
    clear()


@pytest.fixture
def keycloak_env(settings, keycloak_idp) -> TestIdp:
    """The Keycloak-like IdP as the platform-wide provider of the environment."""
    settings.OIDC_PROVIDER = "keycloak"
    settings.OIDC_ISSUER = keycloak_idp.issuer
    settings.OIDC_AUDIENCE = [AUDIENCE]
    settings.OIDC_TENANT_CLAIM = "tenant_id"
    settings.OIDC_ROLES_CLAIM = "realm_access.roles"
    settings.OIDC_ADMIN_ROLE = "tenant-admin"
    keycloak_idp.reset_stats()
    return keycloak_idp


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()
