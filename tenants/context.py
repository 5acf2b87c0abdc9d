"""The current tenant: the one contextvar every other part of the platform reads.

Public API:
    with tenant_context(tenant): ...        # nestable; resets in `finally`
    current_tenant()                         # raises TenantNotSet when none is set
    with unscoped(reason="..."): ...         # audited cross-tenant work, its own transaction
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tenants.exceptions import BypassReasonRequired, TenantNotSet

if TYPE_CHECKING:
    from tenants.models import Tenant


@dataclass(frozen=True, slots=True)
class Scope:
    """What the code running now may touch: one tenant, or everything with a stated reason."""

    tenant: Tenant | None = None
    bypass_reason: str | None = None

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


@contextmanager
def unscoped(*, reason: str, actor: str = "", using: str = "default") -> Iterator[None]:
    """Cross-tenant work: one transaction, an audit row first, then every tenant's rows.

    The audit row and the work commit or roll back together. In PostgreSQL the block runs as
    the break-glass role, whose policy admits rows only in a transaction that wrote an audit
    row (tenants.constraints.RowLevelSecurity), so a bypass without a trace is impossible.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise BypassReasonRequired("unscoped() needs a non-empty reason=...")
    from django.db import transaction

    from tenants.audit import record_event

    outer = _scope.get()
    with transaction.atomic(using=using):
        record_event(
            action="unscoped",
            reason=reason.strip(),
            actor=actor,
            tenant=outer.tenant,
            using=using,
        )
        token = _scope.set(Scope(bypass_reason=reason.strip()))
        try:
            yield
        finally:
            _scope.reset(token)


def database_setting() -> tuple[str, bool]:
    """What the transaction must carry into PostgreSQL: (app.tenant_id, break-glass role on)."""
    scope = _scope.get()
    if scope.tenant is not None:
        return str(scope.tenant.pk), False
    return "", scope.is_bypass
