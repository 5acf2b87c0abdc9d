"""An issuer whose private key the test holds: discovery and JWKS on 127.0.0.1, and tokens
signed with its key (for tests that need validly signed tokens no real provider would issue)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

AUDIENCE = "ameide-api"


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
