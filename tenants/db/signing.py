"""The application's signature on what it tells PostgreSQL: scopes, audit rows, break-glass.

PostgreSQL trusts a value only if it carries an HMAC-SHA256 made with a key that the runtime
role cannot read (tenants.db.wall keeps the key's padded halves in a table only the owner
reads). SQL sent through the runtime role can therefore set any value it likes, but it cannot
make a valid one, nor reuse one past its expiry or on another backend.

The key comes from AMEIDE_SCOPE_KEY, or is derived from SECRET_KEY with a fixed label, so that
every process of one deployment signs alike without another secret to distribute.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

from django.conf import settings

SEPARATOR = "\x1f"  # unit separator: cannot occur in the fields it joins (they are checked)
_BLOCK = 64  # SHA-256 block size: HMAC pads the key to it


def scope_key() -> bytes:
    """The 32-byte key both sides share (derived once per process)."""
    explicit = getattr(settings, "TENANCY_SCOPE_KEY", "")
    if explicit:
        return hashlib.sha256(explicit.encode()).digest()
    return hmac.new(
        settings.SECRET_KEY.encode(), b"ameide.tenancy.scope-key.v1", hashlib.sha256
    ).digest()


def key_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys: PostgreSQL then needs only its built-in sha256()."""
    block = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def sign(message: str, *, key: bytes | None = None) -> str:
    return hmac.new(key or _key(), message.encode(), hashlib.sha256).hexdigest()


def signed_fields(*fields: object) -> str:
    """The MAC of fields joined the way ameide_private.mac_of() joins them."""
    parts = ["" if f is None else str(f) for f in fields]
    return sign(SEPARATOR.join(parts))


def tenant_label(tenant_id: int) -> str:
    """What PostgreSQL shows of a tenant in `application_name` (tenants.db.backend): 12 hex
    digits of a MAC of its id. An operator gets it from `tenants show`; SQL run as the runtime
    role, which sees every application session's `application_name`, learns from it that some
    tenant is busy, not which (a slug or an id would name it). Computed once per tenant and
    process: it goes out with every transaction."""
    label = _LABELS.get(tenant_id)
    if label is None:
        if len(_LABELS) > 10_000:
            _LABELS.clear()
        label = _LABELS[tenant_id] = signed_fields("label", tenant_id)[:12]
    return label


@dataclass(frozen=True, slots=True)
class DatabaseScope:
    """What one transaction may see: a tenant ('t'), global rows ('g'), a break-glass grant ('b')."""

    kind: str
    ident: int


def scope_value(
    scope: DatabaseScope, *, backend_pid: int, ttl_seconds: int, now: float | None = None
) -> tuple[str, float]:
    """`kind:ident:pid:expiry:mac` and its expiry. pid 0 binds to no backend (transaction poolers)."""
    expires = int((time.time() if now is None else now) + ttl_seconds)
    body = f"{scope.kind}:{scope.ident}:{backend_pid}:{expires}"
    return f"{body}:{sign(body)}", float(expires)


_KEY: bytes | None = None
_LABELS: dict[int, str] = {}


def _key() -> bytes:
    global _KEY
    if _KEY is None:
        _KEY = scope_key()
    return _KEY


def reset_key_cache() -> None:
    """Forget the derived key (tests that change SECRET_KEY or AMEIDE_SCOPE_KEY)."""
    global _KEY
    _KEY = None
    _LABELS.clear()
