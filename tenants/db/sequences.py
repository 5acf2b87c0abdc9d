"""Ids taken from a table's sequence ahead of the insert, so that a row and the rows naming it
(its signed audit row) can go to PostgreSQL as one statement.

Ids are reserved in blocks (one round trip per block) and handed out by this process only;
an id left unused when the process ends is a gap in the sequence, as a rolled-back insert
leaves one. Thread-safe: gthread workers share the blocks.
"""

from __future__ import annotations

import threading

from django.db import connections, models

BLOCK = 32

_lock = threading.Lock()
_reserved: dict[tuple[str, str], list[int]] = {}


def next_id(*, model: type[models.Model], using: str = "default") -> int:
    """An id of `model`'s sequence that no other insert will take."""
    key = (connections[using].settings_dict["NAME"], model._meta.db_table)
    with _lock:
        ids = _reserved.get(key)
        if not ids:
            ids = _reserved[key] = _reserve(model=model, using=using)
        return ids.pop()


def _reserve(*, model: type[models.Model], using: str) -> list[int]:
    table = model._meta.db_table
    column = model._meta.pk.column
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [connections[using].ops.quote_name(table), column, BLOCK],
        )
        # Handed out lowest first (pop() takes from the end).
        return sorted((row[0] for row in cursor.fetchall()), reverse=True)


def forget() -> None:
    """Drop the reserved ids (tests that recreate a database)."""
    with _lock:
        _reserved.clear()
