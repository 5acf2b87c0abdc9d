"""Break-glass grants: opened and closed through the database's signed entry points.

`open()` commits the `unscoped` audit row and the grant before the caller's block reads a row:
on this connection when it is in autocommit, otherwise on a short-lived second connection, since
the caller's transaction may still roll back. The grant expires on its own if the process dies.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

from tenants.actor import current_actor
from tenants.audit import clean_text
from tenants.db.signing import signed_fields
from tenants.db.wall import GRANT_TTL_SECONDS, PRIVATE


@contextmanager
def _committing_cursor(using: str) -> Iterator:
    """A cursor whose statements commit at once, whatever transaction the caller is in."""
    connection = connections[using]
    if not connection.in_atomic_block:
        with connection.cursor() as cursor:
            yield cursor
        return
    side = connections.create_connection(using)
    try:
        with side.cursor() as cursor:
            yield cursor
    finally:
        side.close()


def open(*, reason: str, actor: str, tenant, using: str) -> int:  # noqa: A001 (gate protocol)
    who = current_actor()
    actor = clean_text(actor or who.name)[:255]
    reason = clean_text(reason)
    tenant_id = tenant.pk if tenant is not None else None
    expires = int(time.time()) + GRANT_TTL_SECONDS - 60
    nonce = secrets.token_hex(16)
    fields = [actor, reason, tenant_id, who.request_id, who.acting_as, expires, nonce]
    mac = signed_fields("breakglass", *fields)
    with _committing_cursor(using) as cursor:
        cursor.execute(
            f"SELECT {PRIVATE}.open_breakglass(%s, %s, %s, %s, %s, %s, %s, %s)", [*fields, mac]
        )
        return cursor.fetchone()[0]


def close(grant: int, *, using: str) -> None:
    with _committing_cursor(using) as cursor:
        cursor.execute(
            f"SELECT {PRIVATE}.close_breakglass(%s, %s)", [grant, signed_fields("close", grant)]
        )
