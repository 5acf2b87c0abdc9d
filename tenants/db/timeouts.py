"""The per-tenant statement timeout of the current request (set by limits.middleware), read by
the database backend when it puts a tenant scope into a transaction."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

# (tenant id, milliseconds): bound to the tenant, so a scope of another tenant never uses it.
_timeout: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "ameide_statement_timeout", default=None
)


@contextmanager
def statement_timeout(*, tenant_id: int, milliseconds: int) -> Iterator[None]:
    token = _timeout.set((tenant_id, milliseconds))
    try:
        yield
    finally:
        _timeout.reset(token)


def requested_timeout() -> tuple[int, int] | None:
    """(tenant id, milliseconds) the current request set, or None."""
    return _timeout.get()


def timeout_for(*, tenant_id: int, default: int) -> int:
    """The tenant's timeout if the current request set one for it, else `default`."""
    value = _timeout.get()
    if value is not None and value[0] == tenant_id:
        return value[1]
    return default
