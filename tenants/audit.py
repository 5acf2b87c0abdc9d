"""Writing the audit log: who did what to which tenant, in the caller's transaction."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenants.models import AuditEvent, Tenant


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting (a user, a command) and under which request or command id."""

    name: str = ""
    acting_as: str = ""
    request_id: str = ""


_actor: contextvars.ContextVar[Actor] = contextvars.ContextVar("ameide_actor", default=Actor())  # noqa: B039 (frozen)


@contextmanager
def acting(*, name: str, acting_as: str = "", request_id: str = "") -> Iterator[Actor]:
    """Name the actor of the block (set by the middleware per request, by commands per run)."""
    actor = Actor(name=name, acting_as=acting_as, request_id=request_id or uuid.uuid4().hex)
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def current_actor() -> Actor:
    return _actor.get()


def record_event(
    *,
    action: str,
    reason: str = "",
    actor: str = "",
    tenant: Tenant | None = None,
    details: dict[str, Any] | None = None,
    using: str = "default",
) -> AuditEvent:
    """Append one audit row in the current transaction (it commits or rolls back with it)."""
    from tenants.models import AuditEvent

    who = current_actor()
    event = AuditEvent(
        actor=actor or who.name,
        acting_as=who.acting_as,
        action=action,
        tenant_id_value=tenant.pk if tenant is not None else None,
        tenant_slug=tenant.slug if tenant is not None else "",
        reason=reason,
        request_id=who.request_id,
        details=details or {},
    )
    event.save(using=using)
    return event
