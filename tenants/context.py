"""The current tenant: the one contextvar every other part of the platform reads.

Public API:
    with tenant_context(tenant): ...        # nestable; resets in `finally`
    current_tenant()                         # raises TenantNotSet when none is set
    with unscoped(reason="..."): ...         # audited cross-tenant work (break-glass)
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.db import transaction

from tenants.db.signing import DatabaseScope
from tenants.exceptions import BypassReasonRequired, TenantNotSet

if TYPE_CHECKING:
    from tenants.models import Tenant


@dataclass(frozen=True, slots=True)
class Scope:
    """What the code running now may touch: one tenant, or everything with a stated reason."""

    tenant: Tenant | None = None
    bypass_reason: str | None = None
    grant: int | None = None  # the committed break-glass grant that admits every tenant's rows

    @property
    def is_bypass(self) -> bool:
        return self.bypass_reason is not None


_EMPTY = Scope()
_scope: contextvars.ContextVar[Scope] = contextvars.ContextVar(
    "ameide_tenant_scope", default=_EMPTY
)


def current_scope() -> Scope:
    return _scope.get()


def current_tenant() -> Tenant:
    """The tenant of the running code; raises TenantNotSet rather than guessing."""
    tenant = _scope.get().tenant
    if tenant is None:
        raise TenantNotSet()
    return tenant


def current_tenant_or_none() -> Tenant | None:
    """For logs and metrics only: never use this to decide which rows to read."""
    return _scope.get().tenant


@contextmanager
def tenant_context(tenant: Tenant) -> Iterator[Tenant]:
    """Run the block as `tenant`; nested blocks shadow outer ones and restore them on exit."""
    if tenant is None or getattr(tenant, "pk", None) is None:
        raise TenantNotSet(f"tenant_context() needs a saved Tenant, got {tenant!r}.")
    token = _scope.set(Scope(tenant=tenant))
    try:
        yield tenant
    finally:
        _scope.reset(token)


@contextmanager
def no_tenant() -> Iterator[None]:
    """Run the block with no tenant at all (what a fresh thread or request starts with)."""
    token = _scope.set(_EMPTY)
    try:
        yield
    finally:
        _scope.reset(token)


class BreakGlassGate(Protocol):
    """Opens and closes break-glass grants in the database (tenants.db.breakglass)."""

    def open(self, *, reason: str, actor: str, tenant: Tenant | None, using: str) -> int: ...

    def close(self, grant: int, *, using: str) -> None: ...


_gate: BreakGlassGate | None = None


def install_breakglass_gate(gate: BreakGlassGate) -> None:
    """Called once at start-up (tenants.apps); without a gate, unscoped() refuses to run."""
    global _gate
    _gate = gate


@contextmanager
def unscoped(*, reason: str, actor: str = "", using: str = "default") -> Iterator[None]:
    """Cross-tenant work: a committed audit row and grant first, then every tenant's rows.

    The grant (and its audit row) commit in their own short transaction before the block reads
    anything, so rolling the work back cannot erase the trace. PostgreSQL admits other tenants'
    rows only to the break-glass role (on Citus: to any role) in a transaction whose signed
    scope names an open grant, and the grant is closed when the block ends.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise BypassReasonRequired("unscoped() needs a non-empty reason=...")
    if _gate is None:
        raise BypassReasonRequired("break-glass is not available before the tenants app is ready")
    outer = _scope.get()
    grant = _gate.open(reason=reason.strip(), actor=actor, tenant=outer.tenant, using=using)
    token = _scope.set(Scope(bypass_reason=reason.strip(), grant=grant))
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        _scope.reset(token)
        _gate.close(grant, using=using)


_GLOBAL = DatabaseScope("g", 0)
# One object per tenant (the backend compares scopes on every statement: the same object
# compares at once); bounded, like the backend's other per-tenant caches.
_TENANT_SCOPES: dict[int, DatabaseScope] = {}


def database_scope() -> DatabaseScope:
    """What the transaction must carry into PostgreSQL (tenants.db.backend)."""
    scope = _scope.get()
    if scope.tenant is not None:
        tenant_id = int(scope.tenant.pk)
        made = _TENANT_SCOPES.get(tenant_id)
        if made is None:
            if len(_TENANT_SCOPES) > 10_000:
                _TENANT_SCOPES.clear()
            made = _TENANT_SCOPES[tenant_id] = DatabaseScope("t", tenant_id)
        return made
    if scope.grant is not None:
        return DatabaseScope("b", scope.grant)
    return _GLOBAL
