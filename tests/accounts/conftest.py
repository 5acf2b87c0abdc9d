"""Fixtures of the sign-in tests: the test OpenID provider (tests/idp, Node `oidc-provider`) run
as a Keycloak-like and an Auth0-like issuer on 127.0.0.1, a small key server whose private key
the tests hold (for tokens no real provider would sign), and clean per-process caches."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

IDP_DIR = Path(__file__).resolve().parents[1] / "idp"
CLIENT_ID = "ameide"
CLIENT_SECRET = "ameide-secret"
AUDIENCE = "ameide-api"
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


class KeyServer:
    """Discovery and JWKS of an issuer whose private key the test holds.

    For tokens a real provider never signs (no `exp`, `iat` in the future) that must still
    carry a valid signature to reach the checks after it.
    """

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": server.issuer, "jwks_uri": f"{server.issuer}/jwks"}
                elif self.path == "/jwks":
                    jwk = RSAAlgorithm.to_jwk(server.key.public_key(), as_dict=True)
                    body = {"keys": [{**jwk, "kid": server.kid, "alg": "RS256", "use": "sig"}]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})}
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "key-server-user",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "tenant_id": "alpha",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not ...}

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()
