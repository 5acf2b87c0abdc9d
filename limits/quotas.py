"""Quotas checked in the transaction of the write: rows per tenant model, and storage.

The check takes a transaction-scoped advisory lock on (tenant, model) before counting, so two
writers racing for the last free slot are serialised: the second counts after the first has
committed (READ COMMITTED takes a new snapshot per statement) and is refused.

Storage is a measurement (one pass over the tenant's rows, tenants.lifecycle.usage), too costly
for every write: the check reads the last one, and a write that finds it older than
TENANCY_STORAGE_MAX_AGE_SECONDS (or none) measures the tenant again first. So the figure a
write is checked against is at most that old, and a process measures a tenant at most once in
that time (kept in memory too, since a refused write's transaction takes its record with it).
"""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connections, router

from limits import selectors
from limits.errors import QuotaExceeded
from limits.usage import record_measurement
from tenants.context import current_tenant
from tenants.lifecycle.usage import tenant_usage
from tenants.models import Tenant

MIB = 1024 * 1024

# tenant id -> (time.monotonic() of this process's last measurement of it, bytes or None).
_measured: dict[int, tuple[float, int | None]] = {}


def enforce_quotas(*, model, adding: int = 1) -> None:
    """Refuse (QuotaExceeded) a write that would add `adding` rows of `model` to the tenant
    past its quota. Must run inside the write's transaction (the lock lasts until it ends)."""
    # The database that holds the rows (a dedicated one for a tenant placed there): the lock
    # must last as long as the transaction that writes them.
    connection = connections[router.db_for_write(model)]
    if not connection.in_atomic_block:
        raise RuntimeError("enforce_quotas must run inside the write's transaction.")
    tenant = current_tenant()
    limits = selectors.limits_of(tenant_id=tenant.pk)
    key = zlib.crc32(model._meta.label_lower.encode()) & 0x7FFFFFFF
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [key, tenant.pk % 0x7FFFFFFF])
    count = model.objects.count()
    if count + adding > limits.rows_per_model:
        raise QuotaExceeded(
            limit="rows_per_model",
            value=limits.rows_per_model,
            detail=f"Quota exceeded (rows_per_model): at most {limits.rows_per_model} {model._meta.verbose_name_plural} "
            f"per tenant (plan {limits.plan}).",
        )
    stored = storage_bytes(tenant=tenant)
    if stored is not None and stored >= limits.storage_mb * MIB:
        raise QuotaExceeded(
            limit="storage_mb",
            value=limits.storage_mb,
            detail=f"Quota exceeded (storage_mb): the tenant holds {stored // MIB} MiB, its limit is "
            f"{limits.storage_mb} MiB (plan {limits.plan}).",
        )


def storage_bytes(*, tenant: Tenant) -> int | None:
    """The tenant's storage, measured at most TENANCY_STORAGE_MAX_AGE_SECONDS ago (before this
    write); None only when it could never be measured."""
    max_age = settings.TENANCY_STORAGE_MAX_AGE_SECONDS
    last = selectors.last_storage(tenant_id=tenant.pk)
    now = datetime.now(tz=UTC)
    dated = last is not None and last.measured_at is not None
    if dated and now - last.measured_at <= timedelta(seconds=max_age):
        return last.bytes
    mine = _measured.get(tenant.pk)
    if mine is not None and time.monotonic() - mine[0] < max_age:
        return mine[1]
    if len(_measured) > 10_000:
        _measured.clear()
    # Remembered before measuring: if the measurement fails (a tenant too large to measure
    # within its statement timeout), this write fails with it (no savepoint to survive it: a
    # write sends none), and the next ones in this period are checked against the last figure
    # instead of failing the same way.
    _measured[tenant.pk] = (time.monotonic(), last.bytes if last is not None else None)
    usage = tenant_usage(tenant=tenant)[0]
    record_measurement(
        tenant_id=tenant.pk, rows=usage.rows, storage_bytes=usage.bytes, measured_at=now
    )
    _measured[tenant.pk] = (time.monotonic(), usage.bytes)
    return usage.bytes


def forget_measurements() -> None:
    """Drop this process's memory of measurements (tests)."""
    _measured.clear()
