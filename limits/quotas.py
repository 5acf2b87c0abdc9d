"""Quotas checked in the transaction of the write: rows per tenant model, and storage.

The check takes a transaction-scoped advisory lock on (tenant, model) before counting, so two
writers racing for the last free slot are serialised: the second counts after the first has
committed (READ COMMITTED takes a new snapshot per statement) and is refused.
"""

from __future__ import annotations

import zlib

from django.db import connection

from limits import selectors
from limits.errors import QuotaExceeded
from tenants.context import current_tenant

MIB = 1024 * 1024


def enforce_quotas(*, model, adding: int = 1) -> None:
    """Refuse (QuotaExceeded) a write that would add `adding` rows of `model` to the tenant
    past its quota. Must run inside the write's transaction (the lock lasts until it ends)."""
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
    stored = selectors.last_storage_bytes(tenant_id=tenant.pk)
    if stored is not None and stored >= limits.storage_mb * MIB:
        raise QuotaExceeded(
            limit="storage_mb",
            value=limits.storage_mb,
            detail=f"Quota exceeded (storage_mb): the tenant holds {stored // MIB} MiB, its limit is "
            f"{limits.storage_mb} MiB (plan {limits.plan}).",
        )
