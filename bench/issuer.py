"""A benchmark identity provider: an RSA key, realistic ~1 KB access tokens, and a loopback
discovery/JWKS server that counts every request made to it."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "ameide-bench"
TENANT_CLAIM = "tenant_id"
ROLES_CLAIM = "roles"
TOKEN_BYTES = 1024  # "a realistic 1 KB token": what Keycloak or Auth0 access tokens weigh


class BenchIssuer:
    """Mints RS256 tokens; `serve()` publishes discovery and JWKS on 127.0.0.1."""

    def __init__(self, *, issuer: str = "http://127.0.0.1:9/bench") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:16]
        self.issuer = issuer
        self.requests = 0
        self._count_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def jwks(self) -> dict:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def mint(self, *, tenant_external_id: str, subject: str, ttl: int = 3600) -> str:
        """An access token of about TOKEN_BYTES, shaped like a real provider's."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "azp": "ameide-web",
            "scope": "openid profile email workflows:read workflows:write",
            TENANT_CLAIM: tenant_external_id,
            "preferred_username": subject,
            "name": "Benchmark Member",
            "email": f"{subject}@bench.invalid",
            "email_verified": True,
            ROLES_CLAIM: ["member"],
            "groups": [],
        }
        token = self._encode(claims)
        while len(token) < TOKEN_BYTES:
            claims["groups"].append(f"/org/team-{len(claims['groups']):02d}")
            token = self._encode(claims)
        return token

    def _encode(self, claims: dict) -> str:
        return jwt.encode(
            claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "at+jwt"}
        )

    def fetch(self, url: str) -> bytes:
        """In-memory stand-in for the HTTP fetch of accounts.tokens.JWKSCache (counted)."""
        with self._count_lock:
            self.requests += 1
        document = self.jwks() if url.endswith("/jwks") else self.discovery()
        return json.dumps(document).encode()

    def serve(self) -> str:
        """Start the loopback server; returns the issuer URL tokens must carry."""
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with issuer._count_lock:
                    issuer.requests += 1
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = issuer.discovery()
                elif self.path.endswith("/jwks"):
                    body = issuer.jwks()
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}/bench"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.issuer

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
