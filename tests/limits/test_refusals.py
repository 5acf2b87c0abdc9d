"""Refusals clients can act on, in process: 429 with Retry-After and the RateLimit headers,
403 quota_exceeded writing nothing, 503 statement_timeout; other tenants are not refused."""

from __future__ import annotations

import re

import pytest

from tenants.context import tenant_context
from tests.limits.conftest import set_limits
from tests.limits.support import holding
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def test_rate_limit_answers_429_with_retry_after_and_ratelimit_headers(client_a, client_b):
    from tenants.models import Tenant

    set_limits(Tenant.objects.get(slug="alpha"), requests_per_second=1, burst=3)
    first = client_a.get("/api/workflows/")
    assert first.status_code == 200
    assert first["RateLimit-Policy"] == (
        '"rate";q=3;w=3, "concurrency";q=32;qu="concurrent-requests"'
    )
    assert re.fullmatch(r'"rate";r=2;t=\d+', first["RateLimit"]), first["RateLimit"]
    statuses = [client_a.get("/api/workflows/").status_code for _ in range(6)]
    assert statuses[:2] == [200, 200] and 429 in statuses
    refused = client_a.get("/api/workflows/")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert "(requests_per_second, burst)" in refused.json()["detail"]
    assert set(refused.json()) == {"detail", "code"}  # the API's one error shape
    assert int(refused["Retry-After"]) >= 1
    assert re.fullmatch(r'"rate";r=0;t=\d+', refused["RateLimit"])
    # Another tenant is not refused.
    assert [client_b.get("/api/workflows/").status_code for _ in range(6)] == [200] * 6


def test_pages_outside_the_api_are_not_rate_limited(client_a, tenant_a):
    set_limits(tenant_a, requests_per_second=1, burst=1)
    assert [client_a.get("/").status_code for _ in range(3)].count(429) == 0


def test_a_quota_refuses_with_403_naming_the_limit_and_writes_nothing(client_a, client_b, tenant_a):
    with tenant_context(tenant_a):
        Workflow.objects.create(name="existing")
    set_limits(tenant_a, rows_per_model=2)
    created = client_a.post("/api/workflows/", {"name": "second"}, format="json")
    assert created.status_code == 201, created.content
    refused = client_a.post("/api/workflows/", {"name": "third"}, format="json")
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "quota_exceeded" and set(body) == {"detail", "code"}
    assert body["detail"].startswith("Quota exceeded (rows_per_model): at most 2 ")
    with tenant_context(tenant_a):
        assert sorted(Workflow.objects.values_list("name", flat=True)) == ["existing", "second"]
    assert client_b.post("/api/workflows/", {"name": "third"}, format="json").status_code == 201


def test_the_storage_quota_reads_the_last_measurement(client_a, tenant_a):
    from limits.usage import record_measurement

    set_limits(tenant_a, storage_mb=1)
    assert client_a.post("/api/workflows/", {"name": "a"}, format="json").status_code == 201
    record_measurement(tenant_id=tenant_a.pk, rows=1, storage_bytes=2 * 1024 * 1024)
    refused = client_a.post("/api/workflows/", {"name": "b"}, format="json")
    assert refused.status_code == 403 and "(storage_mb)" in refused.json()["detail"]


@pytest.mark.urls("tests.limits.urls")
def test_the_tenants_statement_timeout_reaches_postgresql(client_a, client_b, tenant_a):
    set_limits(tenant_a, statement_timeout_ms=1500)
    assert client_a.get("/api/test/timeout/").json() == {"statement_timeout": "1500ms"}
    assert client_b.get("/api/test/timeout/").json() == {"statement_timeout": "10s"}


@pytest.mark.urls("tests.limits.urls")
def test_a_statement_timeout_answers_503_with_a_code(client_a, tenant_a):
    set_limits(tenant_a, statement_timeout_ms=100)
    with holding():
        response = client_a.get("/api/test/hold/")
    assert response.status_code == 503
    assert response.json()["code"] == "statement_timeout"
    assert response["Retry-After"] == "1"
    assert client_a.get("/api/test/hold/").status_code == 200  # lock released: answers
