"""How fresh the storage quota's figure is: a write is checked against a measurement at most
TENANCY_STORAGE_MAX_AGE_SECONDS old, taken again by the write that finds it older (or none),
and a process measures a tenant at most once in that time."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from limits import quotas
from limits.models import UsageDay
from limits.usage import record_measurement
from tenants.context import tenant_context
from tests.limits.conftest import set_limits
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def _create(client, name: str):
    return client.post("/api/workflows/", {"name": name}, format="json")


def _figure(tenant) -> tuple[int, datetime]:
    day = UsageDay.objects.get(tenant_id=tenant.pk, storage_bytes__isnull=False)
    return day.storage_bytes, day.storage_measured_at


def test_a_fresh_figure_is_used_as_it_is(client_a, tenant_a, settings):
    settings.TENANCY_STORAGE_MAX_AGE_SECONDS = 3600
    set_limits(tenant_a, storage_mb=1)
    # Recorded a moment ago: trusted, although the tenant holds far less by now.
    record_measurement(tenant_id=tenant_a.pk, rows=1, storage_bytes=2 * MIB)
    refused = _create(client_a, "a")
    assert refused.status_code == 403 and "(storage_mb)" in refused.json()["detail"]
    assert _figure(tenant_a)[0] == 2 * MIB  # not measured again


def test_a_figure_older_than_the_bound_is_measured_again_by_the_write(client_a, tenant_a, settings):
    settings.TENANCY_STORAGE_MAX_AGE_SECONDS = 300
    set_limits(tenant_a, storage_mb=1)
    old = datetime.now(tz=UTC) - timedelta(seconds=301)
    record_measurement(tenant_id=tenant_a.pk, rows=1, storage_bytes=2 * MIB, measured_at=old)
    created = _create(client_a, "a")
    assert created.status_code == 201, created.content
    stored, measured_at = _figure(tenant_a)
    assert 0 <= stored < MIB and measured_at > old


def test_a_tenant_never_measured_is_measured_by_its_first_write(client_a, tenant_a):
    set_limits(tenant_a, storage_mb=1)
    assert not UsageDay.objects.filter(tenant_id=tenant_a.pk, storage_bytes__isnull=False)
    assert _create(client_a, "first").status_code == 201
    stored, measured_at = _figure(tenant_a)
    assert stored >= 0 and measured_at is not None


def test_with_a_bound_of_zero_every_write_sees_the_data_written_before_it(
    client_a, tenant_a, settings
):
    settings.TENANCY_STORAGE_MAX_AGE_SECONDS = 0
    set_limits(tenant_a, storage_mb=1)
    assert _create(client_a, "small").status_code == 201
    with tenant_context(tenant_a):
        Workflow.objects.create(name="large", description=os.urandom(MIB).hex())
    refused = _create(client_a, "one more")
    assert refused.status_code == 403, refused.content
    assert refused.json()["detail"].startswith(
        "Quota exceeded (storage_mb): the tenant holds 2 MiB"
    )
    with tenant_context(tenant_a):
        assert sorted(Workflow.objects.values_list("name", flat=True)) == ["large", "small"]


def test_a_process_measures_a_tenant_at_most_once_within_the_bound(
    client_a, tenant_a, settings, monkeypatch
):
    """A refused write takes its measurement's record with it; the process still remembers
    the figure instead of scanning the tenant again on every refused write."""
    settings.TENANCY_STORAGE_MAX_AGE_SECONDS = 3600
    set_limits(tenant_a, storage_mb=0)
    scans = []
    measure = quotas.tenant_usage
    monkeypatch.setattr(quotas, "tenant_usage", lambda **kw: scans.append(1) or measure(**kw))
    for name in ("a", "b", "c"):
        refused = _create(client_a, name)
        assert refused.status_code == 403 and "(storage_mb)" in refused.json()["detail"]
    assert len(scans) == 1
    assert not UsageDay.objects.filter(tenant_id=tenant_a.pk, storage_bytes__isnull=False)


def test_a_measurement_past_the_statement_timeout_fails_that_write_only(
    client_a, tenant_a, settings, monkeypatch
):
    """A tenant too large to measure within its statement timeout: the write that measures
    fails with 503 statement_timeout and writes nothing; the next ones in the period are
    checked against the last figure instead of failing the same way."""
    settings.TENANCY_STORAGE_MAX_AGE_SECONDS = 3600
    set_limits(tenant_a, storage_mb=1, statement_timeout_ms=100)

    def measurement_too_slow(**_):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(2)")  # cancelled by PostgreSQL after 100 ms
        raise AssertionError("the statement timeout did not cancel the measurement")

    monkeypatch.setattr(quotas, "tenant_usage", measurement_too_slow)
    failed = _create(client_a, "measured")
    assert failed.status_code == 503, failed.content
    assert failed.json()["code"] == "statement_timeout"
    assert _create(client_a, "next").status_code == 201
    with tenant_context(tenant_a):
        assert list(Workflow.objects.values_list("name", flat=True)) == ["next"]
