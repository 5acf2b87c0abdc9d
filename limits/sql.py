"""Every SQL statement names its tenant and request in a leading comment, and its time is
added to the request's database time (usage).

The comment holds identifiers only (the tenant's slug, the request or command id), never a
value of the statement: values stay bound on the server (tenants.db.backend). The wrapper runs
inside the backend's scope wrapper, so the scope logic sees the statement as Django wrote it.
"""

from __future__ import annotations

import contextvars
import re
import time
from dataclasses import dataclass

from tenants.audit import current_actor
from tenants.context import current_tenant_or_none

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


@dataclass(slots=True)
class Meter:
    """Database time and statements of one request."""

    seconds: float = 0.0
    queries: int = 0


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("ameide_meter", default=None)


def start_meter() -> tuple[Meter, contextvars.Token]:
    meter = Meter()
    return meter, _meter.set(meter)


def stop_meter(token: contextvars.Token) -> None:
    _meter.reset(token)


def safe(value: str) -> str:
    """An identifier fit for a comment: no `*/`, no `%`, no quotes, at most 64 characters."""
    return _UNSAFE.sub("_", value)[:64]


def comment() -> str:
    tenant = current_tenant_or_none()
    slug = safe(tenant.slug) if tenant is not None else "-"
    request_id = safe(current_actor().request_id) or "-"
    return f"/* tenant={slug} request={request_id} */ "


def name_and_time(execute, sql, params, many, context):
    if isinstance(sql, str):
        sql = comment() + sql
    meter = _meter.get()
    if meter is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        meter.seconds += time.perf_counter() - started
        meter.queries += 1


def install_wrapper(sender, connection, **kwargs) -> None:
    """On every new connection of the PostgreSQL backend (after its own scope wrapper)."""
    if connection.vendor == "postgresql" and name_and_time not in connection.execute_wrappers:
        connection.execute_wrappers.append(name_and_time)
