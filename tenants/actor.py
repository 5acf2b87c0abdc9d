"""Who is acting: the user or command of the current request or run, and its request id.

Set per request by the tenant middleware and per run by commands and the worker; read by the
audit log (tenants.audit), the log lines (tenants.logging) and the label PostgreSQL shows for
each transaction (tenants.db.backend). Imports nothing of the models, so all of those may.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


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
