"""Every SQL statement's time is added to the request's database time (usage).

Who runs a statement (tenant and request) reaches PostgreSQL with the scope, as the
transaction's `application_name` (tenants.db.backend.base.statement_label), not here.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass


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


def timed(execute, sql, params, many, context):
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
    if connection.vendor == "postgresql" and timed not in connection.execute_wrappers:
        connection.execute_wrappers.append(timed)
