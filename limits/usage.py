"""Recording usage cheaply: each process adds its requests to an in-memory buffer and writes it
to the per-minute and per-day tables at most every TENANCY_USAGE_FLUSH_SECONDS (one upsert per
table, increments added in SQL, so processes never overwrite each other's figures).

A process that dies loses at most its unflushed seconds; the buffer is written at exit too.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import DatabaseError, connection

from tenants.context import no_tenant

logger = logging.getLogger("limits.usage")

# Counter order in the buffer and the tables.
COLUMNS = ("requests", "errors", "refused", "latency_ms", "db_ms", "queries")


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buffer: dict[tuple[int, int], list[int]] = {}  # (tenant, minute epoch) -> counters
        self.last_flush = time.monotonic()
        self.last_purge = 0.0

    def add(
        self, *, tenant_id: int, status: int, latency_ms: int, db_ms: int, queries: int
    ) -> None:
        minute = int(time.time()) // 60 * 60
        refused = status == 429 or status == 403
        with self.lock:
            entry = self.buffer.setdefault((tenant_id, minute), [0] * (len(COLUMNS) + 1))
            entry[0] += 1
            entry[1] += 1 if status >= 500 or refused else 0
            entry[2] += 1 if refused else 0
            entry[3] += latency_ms
            entry[4] += db_ms
            entry[5] += queries
            entry[6] = max(entry[6], latency_ms)
            due = time.monotonic() - self.last_flush >= settings.TENANCY_USAGE_FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending, self.buffer = self.buffer, {}
            self.last_flush = time.monotonic()
        if not pending:
            return
        try:
            _write(pending)
            self._purge_old_minutes()
        except DatabaseError:
            # Usage is accounting, not the request's business: keep the figures for next time.
            logger.warning("usage not written; kept for the next flush", exc_info=True)
            with self.lock:
                for key, values in pending.items():
                    entry = self.buffer.setdefault(key, [0] * (len(COLUMNS) + 1))
                    for i, value in enumerate(values[:-1]):
                        entry[i] += value
                    entry[-1] = max(entry[-1], values[-1])

    def _purge_old_minutes(self) -> None:
        if time.monotonic() - self.last_purge < 3600:
            return
        self.last_purge = time.monotonic()
        hours = settings.TENANCY_USAGE_MINUTES_KEPT_HOURS
        with no_tenant(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM limits_usageminute WHERE minute < now() - make_interval(hours => %s)",
                [hours],
            )


def _upsert_sql(table: str, period: str) -> str:
    columns = ", ".join(COLUMNS)
    added = ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in COLUMNS)
    placeholders = ", ".join(["%s"] * (len(COLUMNS) + 3))
    extra = ", rows, storage_bytes, storage_measured_at" if table == "limits_usageday" else ""
    extra_values = ", NULL, NULL, NULL" if extra else ""
    return (
        f"INSERT INTO {table} AS t (tenant_id, {period}, {columns}, latency_max_ms{extra}) "
        f"VALUES ({placeholders}{extra_values}) "
        f"ON CONFLICT (tenant_id, {period}) DO UPDATE SET {added}, "
        f"latency_max_ms = GREATEST(t.latency_max_ms, EXCLUDED.latency_max_ms)"
    )


def _write(pending: dict[tuple[int, int], list[int]]) -> None:
    minutes = []
    days: dict[tuple[int, object], list[int]] = {}
    for (tenant_id, minute), values in sorted(pending.items()):
        at = datetime.fromtimestamp(minute, tz=UTC)
        minutes.append([tenant_id, at, *values])
        day = days.setdefault((tenant_id, at.date()), [0] * len(values))
        for i, value in enumerate(values[:-1]):
            day[i] += value
        day[-1] = max(day[-1], values[-1])
    with no_tenant(), connection.cursor() as cursor:
        for row in minutes:
            cursor.execute(_upsert_sql("limits_usageminute", "minute"), row)
        for (tenant_id, day), values in days.items():
            cursor.execute(_upsert_sql("limits_usageday", "day"), [tenant_id, day, *values])


recorder = Recorder()
atexit.register(recorder.flush)


def record_measurement(
    *, tenant_id: int, rows: int, storage_bytes: int, measured_at: datetime | None = None
) -> None:
    """Store a tenant's measured rows and storage as today's (`tenants usage --record`, and the
    storage quota when the last figure is too old)."""
    measured_at = measured_at or datetime.now(tz=UTC)
    with no_tenant(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO limits_usageday AS t (tenant_id, day, requests, errors, refused, "
            "latency_ms, latency_max_ms, db_ms, queries, rows, storage_bytes, "
            "storage_measured_at) VALUES (%s, %s, 0, 0, 0, 0, 0, 0, 0, %s, %s, %s) "
            "ON CONFLICT (tenant_id, day) DO UPDATE SET rows = EXCLUDED.rows, "
            "storage_bytes = EXCLUDED.storage_bytes, "
            "storage_measured_at = EXCLUDED.storage_measured_at",
            [tenant_id, measured_at.astimezone(UTC).date(), rows, storage_bytes, measured_at],
        )
