"""The development issuer: discovery, JWKS and short-lived RS256 tokens for the demo and scripts.

Only with DEV_ISSUER_ENABLED=true and DEBUG on (settings refuse it otherwise). Its tokens are
verified exactly like any provider's: the API fetches this app's JWKS over HTTP through the
same cache, and the issuer is one more platform-wide entry of the allow-list
(accounts.providers). The private key is generated on first use into DEV_ISSUER_KEY_DIR
(`.devissuer/`, git-ignored) and never leaves the machine.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.http import Http404, JsonResponse
from jwt.algorithms import RSAAlgorithm

from accounts.providers import (
    DEV_ISSUER_ADMIN_ROLE,
    DEV_ISSUER_AUDIENCE,
    DEV_ISSUER_ROLES_CLAIM,
    DEV_ISSUER_TENANT_CLAIM,
    dev_issuer_active,
)
from tenants.models import Tenant

KEY_FILE = "signing-key.pem"
DEFAULT_TTL_SECONDS = 900
MAX_TTL_SECONDS = 24 * 3600


def signing_key() -> rsa.RSAPrivateKey:
    """The issuer's private key, generated on first use; safe against concurrent first uses."""
    directory = Path(settings.DEV_ISSUER_KEY_DIR)
    path = directory / KEY_FILE
    if not path.exists():
        _generate_key(directory, path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _generate_key(directory: Path, path: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written aside, then hard-linked into place: the link fails if another process (the
    # server, or a `tenants token` run) got there first, and nobody ever reads half a file.
    scratch = directory / f".{KEY_FILE}.{os.getpid()}.{uuid.uuid4().hex}"
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        with contextlib.suppress(FileExistsError):
            os.link(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": key_id(jwk), "alg": "RS256", "use": "sig"}


def key_id(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: a new key gets a new kid, so rotation is just deleting the file."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_access_token(
    *, tenant: Tenant, username: str, admin: bool = False, ttl: int = DEFAULT_TTL_SECONDS
) -> str:
    """An access token of the development issuer for `username` in `tenant`."""
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_SECONDS} seconds")
    if not username:
        raise ValueError("a user name is required")
    key = signing_key()
    now = int(time.time())
    claims = {
        "iss": settings.DEV_ISSUER_URL,
        "sub": username,
        "aud": DEV_ISSUER_AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        DEV_ISSUER_TENANT_CLAIM: tenant.external_id,
        "preferred_username": username,
        "name": username,
        DEV_ISSUER_ROLES_CLAIM: [DEV_ISSUER_ADMIN_ROLE] if admin else [],
    }
    headers = {"kid": public_jwk(key)["kid"], "typ": "at+jwt"}
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


def discovery_view(request):
    if not dev_issuer_active():
        raise Http404("The development issuer is not enabled.")
    issuer = settings.DEV_ISSUER_URL
    return JsonResponse(
        {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": [],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", DEV_ISSUER_TENANT_CLAIM],
        }
    )


def jwks_view(request):
    if not dev_issuer_active():
        raise Http404("The development issuer is not enabled.")
    return JsonResponse({"keys": [public_jwk(signing_key())]})
