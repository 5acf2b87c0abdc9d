"""Usage recorded per request, rolled up per minute and per day, read by `tenants usage`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from limits.models import UsageDay, UsageMinute
from limits.usage import recorder
from tests.limits.conftest import set_limits
from tests.tenants.cli_support import refused, tenants

pytestmark = pytest.mark.django_db


def test_requests_are_recorded_per_minute_and_per_day(client_a, client_b, tenant_a, tenant_b):
    set_limits(tenant_a, requests_per_second=1, burst=2)
    statuses = [client_a.get("/api/workflows/").status_code for _ in range(4)]
    client_b.get("/api/workflows/")
    minute = UsageMinute.objects.get(tenant_id=tenant_a.pk)
    day = UsageDay.objects.get(tenant_id=tenant_a.pk)
    assert minute.requests == day.requests == 4
    assert minute.refused == day.refused == statuses.count(429) >= 1
    assert minute.queries > 0 and minute.latency_ms >= minute.latency_max_ms > 0
    assert UsageMinute.objects.get(tenant_id=tenant_b.pk).requests == 1


def test_processes_add_up_instead_of_overwriting(tenant_a):
    recorder.add(tenant_id=tenant_a.pk, status=200, latency_ms=5, db_ms=1, queries=1)
    recorder.flush()
    recorder.add(tenant_id=tenant_a.pk, status=500, latency_ms=9, db_ms=2, queries=3)
    recorder.flush()
    day = UsageDay.objects.get(tenant_id=tenant_a.pk)
    assert (day.requests, day.errors, day.latency_ms, day.latency_max_ms, day.queries) == (
        2,
        1,
        14,
        9,
        4,
    )


def test_tenants_usage_since_json(tenant_a, tenant_b):
    for _ in range(3):
        recorder.add(tenant_id=tenant_a.pk, status=200, latency_ms=10, db_ms=4, queries=2)
    recorder.flush()
    # An old day outside the window.
    UsageDay.objects.create(
        tenant_id=tenant_a.pk, day=(timezone.now() - timedelta(days=10)).date(), requests=100
    )
    out, _ = tenants("usage", "alpha", "--since", "24h", "--json")
    (entry,) = json.loads(out)
    assert entry["slug"] == "alpha"
    assert entry["requests"]["requests"] == 3
    assert entry["requests"]["latency_avg_ms"] == 10 and entry["requests"]["db_ms"] == 12
    out, _ = tenants("usage", "--since", "30d", "--json")
    by_slug = {e["slug"]: e for e in json.loads(out)}
    assert by_slug["alpha"]["requests"]["requests"] == 103
    assert by_slug["bravo"]["requests"] == {}
    refused("usage", "--since", "yesterday", match="--since takes")


def test_tenants_usage_record_stores_rows_and_storage(tenant_a, client_a):
    assert client_a.post("/api/workflows/", {"name": "x"}, format="json").status_code == 201
    tenants("usage", "alpha", "--record")
    day = UsageDay.objects.get(tenant_id=tenant_a.pk, day=timezone.now().date())
    assert day.rows >= 1 and day.storage_bytes > 0


def test_the_metrics_label_names_only_the_top_tenants(tenant_a, tenant_b, settings):
    from limits import metrics

    settings.TENANCY_METRICS_TOP_TENANTS = 1
    settings.TENANCY_METRICS_TOP_REFRESH_SECONDS = 0
    for _ in range(3):
        recorder.add(tenant_id=tenant_a.pk, status=200, latency_ms=1, db_ms=1, queries=1)
    recorder.add(tenant_id=tenant_b.pk, status=200, latency_ms=1, db_ms=1, queries=1)
    recorder.flush()
    assert metrics.top.label(tenant_a) == "alpha"
    assert metrics.top.label(tenant_b) == metrics.OTHER
