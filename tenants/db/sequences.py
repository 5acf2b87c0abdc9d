"""Ids taken from a table's sequence ahead of the insert, so that a row and the rows naming it
(its signed audit row) can go to PostgreSQL as one statement; and moving a sequence past the
ids an import keeps.

Ids are reserved in blocks (one round trip per block) and handed out by this process only;
an id left unused when the process ends is a gap in the sequence, as a rolled-back insert
leaves one. Thread-safe: gthread workers share the blocks.

An id of such a block lives in a process's memory, not in the table, so the database cannot
tell it from an id that was never used: an import keeps an archived id of these tables only
above everything the sequence ever handed out (`reserve_ids`), never in a gap below.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.db import connections, models

from tenants.db.signing import signed_fields
from tenants.db.wall import PRIVATE

BLOCK = 32
# The tables whose ids next_id() hands out in blocks (it refuses any other): imports read
# this list to know where a free-looking id may be held by a running process.
BLOCK_TABLES = frozenset({"tenants_tenant"})

_lock = threading.Lock()
_reserved: dict[tuple[str, str], list[int]] = {}


def next_id(*, model: type[models.Model], using: str = "default") -> int:
    """An id of `model`'s sequence that no other insert will take."""
    if model._meta.db_table not in BLOCK_TABLES:
        raise ValueError(f"{model._meta.db_table} is not in BLOCK_TABLES (imports must know).")
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


@dataclass(frozen=True)
class Watermark:
    """A sequence as an import found it: the highest id it had ever handed out, and the
    highest id an import may keep (half its range, so that no archive can exhaust it)."""

    handed_out: int
    ceiling: int


def reserve_through(*, table: str, column: str, to: int, using: str = "default") -> Watermark:
    """Move `table`'s id sequence up to `to` (never down, never past the ceiling), after every
    transaction that took an id from it has ended; from then on it hands out only higher ids.

    Goes through the owner's signed `reserve_ids` (the runtime role may not set a sequence,
    or SQL injection could exhaust one). Waits at most wall.IMPORT_LOCK_TIMEOUT."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT handed_out, id_ceiling FROM {PRIVATE}.reserve_ids(%s, %s, %s, %s)",
            [table, column, to, signed_fields("reserve_ids", table, column, to)],
        )
        handed_out, ceiling = cursor.fetchone()
    return Watermark(handed_out=handed_out, ceiling=ceiling)
