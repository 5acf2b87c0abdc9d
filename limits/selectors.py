"""Reads: a tenant's effective limits (cached briefly per process) and its usage over time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Sum
from django.utils import timezone

from limits.conf import Limits, default_plan, effective
from limits.models import TenantLimits, UsageDay, UsageMinute
from tenants.context import no_tenant

_cache: dict[int, tuple[float, Limits]] = {}


def limits_of(*, tenant_id: int) -> Limits:
    """The tenant's limits, read at most every TENANCY_LIMITS_CACHE_SECONDS per process."""
    now = time.monotonic()
    cached = _cache.get(tenant_id)
    if cached is not None and now - cached[0] < settings.TENANCY_LIMITS_CACHE_SECONDS:
        return cached[1]
    with no_tenant():
        row = TenantLimits.objects.filter(tenant_id=tenant_id).first()
    limits = (
        effective(plan=row.plan, overrides=row.overrides)
        if row is not None
        else effective(plan=default_plan(), overrides={})
    )
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[tenant_id] = (now, limits)
    return limits


def forget_cached(*, tenant_id: int) -> None:
    _cache.pop(tenant_id, None)


def overrides_of(*, tenant_id: int) -> dict[str, int]:
    with no_tenant():
        row = TenantLimits.objects.filter(tenant_id=tenant_id).first()
    return dict(row.overrides) if row is not None else {}


FIELDS = ("requests", "errors", "refused", "latency_ms", "db_ms", "queries")


def usage_totals(*, tenant_ids: list[int] | None, since: datetime) -> dict[int, dict]:
    """Per tenant: sums since `since` (minute rows up to their retention, days before)."""
    minutes_from = timezone.now() - timedelta(hours=settings.TENANCY_USAGE_MINUTES_KEPT_HOURS)
    totals: dict[int, dict] = {}

    def add(queryset) -> None:
        if tenant_ids is not None:
            queryset = queryset.filter(tenant_id__in=tenant_ids)
        rows = queryset.values("tenant_id").annotate(
            **{f: Sum(f) for f in FIELDS}, latency_max_ms=Max("latency_max_ms")
        )
        for row in rows:
            entry = totals.setdefault(
                row["tenant_id"], {**dict.fromkeys(FIELDS, 0), "latency_max_ms": 0}
            )
            for field in FIELDS:
                entry[field] += row[field] or 0
            entry["latency_max_ms"] = max(entry["latency_max_ms"], row["latency_max_ms"] or 0)

    if since >= minutes_from:
        add(UsageMinute.objects.filter(minute__gte=since))
    else:
        # Whole days before the minute rows' window, then minutes of today.
        today = timezone.now().date()
        add(UsageDay.objects.filter(day__gte=since.date(), day__lt=today))
        start = timezone.make_aware(datetime.combine(today, datetime.min.time()))
        add(UsageMinute.objects.filter(minute__gte=start))
    for entry in totals.values():
        requests = entry["requests"]
        entry["latency_avg_ms"] = round(entry["latency_ms"] / requests, 1) if requests else 0
    return totals


def usage_series(*, tenant_id: int, hours: int = 24, days: int = 30) -> dict[str, list]:
    """Points for the usage charts: per minute over `hours`, per day over `days`."""
    now = timezone.now()
    minutes = list(
        UsageMinute.objects.filter(tenant_id=tenant_id, minute__gte=now - timedelta(hours=hours))
        .order_by("minute")
        .values("minute", *FIELDS)
    )
    daily = list(
        UsageDay.objects.filter(tenant_id=tenant_id, day__gte=(now - timedelta(days=days)).date())
        .order_by("day")
        .values("day", *FIELDS, "rows", "storage_bytes")
    )
    return {"minutes": minutes, "days": daily}


@dataclass(frozen=True, slots=True)
class StorageFigure:
    bytes: int
    measured_at: datetime | None  # None: recorded before measurement times were kept


def last_storage(*, tenant_id: int) -> StorageFigure | None:
    """The tenant's storage when last measured, and when that was; None if never measured."""
    row = (
        UsageDay.objects.filter(tenant_id=tenant_id, storage_bytes__isnull=False)
        .order_by("-day")
        .values_list("storage_bytes", "storage_measured_at")
        .first()
    )
    return StorageFigure(bytes=row[0], measured_at=row[1]) if row is not None else None
