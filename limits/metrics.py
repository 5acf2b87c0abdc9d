"""Prometheus metrics per tenant (prometheus-client; multi-process mode under gunicorn when
PROMETHEUS_MULTIPROC_DIR is set).

The tenant label is bounded: only the TENANCY_METRICS_TOP_TENANTS tenants with the most
requests today (UTC; re-read from the usage tables every
TENANCY_METRICS_TOP_REFRESH_SECONDS, 60) are named; every other
tenant is counted as "other". A series per tenant for thousands of tenants would swamp the
time-series database; the usage tables hold the full detail.
"""

from __future__ import annotations

import os
import threading
import time

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Sum
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

from limits.models import UsageDay
from tenants.context import no_tenant

OTHER = "other"

REQUESTS = Counter(
    "ameide_tenant_requests_total", "Requests per tenant and status class", ["tenant", "status"]
)
LATENCY = Histogram(
    "ameide_tenant_request_seconds",
    "Request latency per tenant",
    ["tenant"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _TopTenants:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: set[int] = set()
        self.read_at = -1e9

    def label(self, tenant) -> str:
        now = time.monotonic()
        every = settings.TENANCY_METRICS_TOP_REFRESH_SECONDS
        if now - self.read_at >= every:
            with self.lock:
                if now - self.read_at >= every:
                    self.read_at = now
                    self.ids = _read_top()
        return tenant.slug if tenant.pk in self.ids else OTHER


def _read_top() -> set[int]:
    try:
        with no_tenant():
            rows = (
                UsageDay.objects.filter(day__gte=timezone.now().date())
                .values("tenant_id")
                .annotate(total=Sum("requests"))
                .order_by("-total")[: settings.TENANCY_METRICS_TOP_TENANTS]
            )
            return {row["tenant_id"] for row in rows}
    except DatabaseError:
        return set()


top = _TopTenants()


# The series of each (tenant label, status class), looked up once: `labels()` validates and
# locks on every call, three times the cost of counting (prometheus-client keeps every series it
# made as well, so this holds no more than the registry does).
_series: dict[tuple[str, str], tuple] = {}


def observe(*, tenant, status: int, seconds: float) -> None:
    key = (top.label(tenant), f"{status // 100}xx")
    series = _series.get(key)
    if series is None:
        series = _series[key] = (
            REQUESTS.labels(tenant=key[0], status=key[1]),
            LATENCY.labels(tenant=key[0]),
        )
    series[0].inc()
    series[1].observe(seconds)


def exposition() -> bytes:
    """The text exposition: every worker's figures in multi-process mode, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
