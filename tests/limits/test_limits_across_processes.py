"""Limits against gunicorn with several worker processes, with the Redis store and with the
PostgreSQL store: the limit holds across processes (admitted requests counted exactly), only
the limited tenant is refused, and nothing is half-written."""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass

import pytest
import requests

from tests.limits.conftest import set_limits
from tests.limits.support import (
    Background,
    gunicorn_workers,
    holding,
    parallel,
    redis_prefix,
    redis_url,
    wait_for,
)
from tests.rls.support import COMMITTED, child_environment, free_port, rows_by_tenant

pytestmark = [COMMITTED, pytest.mark.slow]

METRICS_TOKEN = "scraper-secret"


@dataclass
class Server:
    base: str
    drain: object
    tokens: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return requests.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def create(self, who: str, name: str) -> requests.Response:
        return self.call(who, "POST", "/api/workflows/", json={"name": name})

    def request_pids(self) -> set[int]:
        """Worker processes that logged an API request (the JSON access log)."""
        pids = set()
        for line in self.drain.tail().splitlines():
            if line.startswith("{") and '"ameide.request"' in line:
                entry = json.loads(line)
                if entry.get("path", "").startswith("/api/"):
                    pids.add(entry["process"])
        return pids


@pytest.fixture(params=["postgresql", "redis"])
def server(request, settings, tenant_a, tenant_b, tmp_path):
    from accounts.dev_issuer import mint_access_token

    port = free_port()
    settings.DEV_ISSUER_URL = f"http://127.0.0.1:{port}/dev-issuer"
    tokens = {
        "a": mint_access_token(tenant=tenant_a, username="token-a", ttl=3600),
        "b": mint_access_token(tenant=tenant_b, username="token-b", ttl=3600),
    }
    env = child_environment(
        DEBUG="true",  # the development issuer exists only with DEBUG on
        DEV_ISSUER_ENABLED="true",
        DEV_ISSUER_URL=settings.DEV_ISSUER_URL,
        REDIS_URL=redis_url() if request.param == "redis" else "",
        TENANCY_REDIS_PREFIX=redis_prefix(),
        TENANCY_LIMITS_CACHE_SECONDS="0",
        TENANCY_USAGE_FLUSH_SECONDS="0",
        CONN_MAX_AGE="60",
        LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        METRICS_TOKEN=METRICS_TOKEN,
        TENANCY_METRICS_TOP_TENANTS="1",
        TENANCY_METRICS_TOP_REFRESH_SECONDS="0",
    )
    with gunicorn_workers(env=env, port=port, workers=3, threads=4) as (base, drain):
        running = Server(base, drain, tokens)
        # First use of each token provisions its user, one at a time; then every worker
        # fetches the issuer's keys before the load (a worker whose threads are all busy could
        # not answer another worker's key fetch).
        assert [running.call(w, "GET", "/api/me/").status_code for w in "ab"] == [200, 200]

        def warm() -> bool:
            assert [running.call(w, "GET", "/api/me/").status_code for w in "ab"] == [200, 200]
            return len(running.request_pids()) == 3

        wait_for(warm, what="every worker to answer")
        yield running


def test_the_rate_limit_holds_across_worker_processes(server, tenant_a, tenant_b):
    set_limits(tenant_a, requests_per_second=1, burst=10)
    calls = [lambda i=i: server.create("a", f"a{i}") for i in range(40)]
    calls += [lambda i=i: server.create("b", f"b{i}") for i in range(12)]
    started = time.monotonic()
    responses = parallel(calls, workers=12)
    elapsed = time.monotonic() - started
    a, b = responses[:40], responses[40:]

    admitted = [r for r in a if r.status_code == 201]
    assert {r.status_code for r in a} == {201, 429}, [r.text for r in a if r.status_code >= 500]
    # One shared bucket: the burst, plus what one request per second refills while the test
    # runs; a counter per process would admit a burst in each of the three.
    assert 10 <= len(admitted) <= 10 + math.ceil(elapsed), (len(admitted), elapsed)
    for refused in (r for r in a if r.status_code == 429):
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit"].startswith('"rate";r=0;')
    assert [r.status_code for r in b] == [201] * 12  # the other tenant is not refused
    # Nothing half-written: a row for each 201 and for nothing else.
    assert rows_by_tenant() == {tenant_a.pk: len(admitted), tenant_b.pk: 12}
    assert len(server.request_pids()) > 1, "requests were not spread over processes"


def test_the_concurrency_limit_holds_across_worker_processes(server, tenant_a):
    set_limits(tenant_a, concurrent_requests=2)
    with holding() as waiting:
        held = [Background(lambda: server.call("a", "GET", "/api/test/hold/")) for _ in range(6)]
        for thread in held:
            thread.start()
        # Two are admitted and wait inside the database; the four others come back at once.
        wait_for(lambda: waiting() == 2 and sum(not t.is_alive() for t in held) == 4, what="4")
        refused = [t.result for t in held if not t.is_alive()]
        assert [r.status_code for r in refused] == [429] * 4
        assert {r.json()["code"] for r in refused} == {"concurrency_limited"}
        assert all(r.headers["Retry-After"] == "1" for r in refused)
        # Meanwhile the other tenant is served.
        assert [server.call("b", "GET", "/api/workflows/").status_code for _ in range(4)] == [
            200
        ] * 4
        assert server.call("a", "GET", "/api/workflows/").status_code == 429
    for thread in held:
        thread.join(timeout=60)
    assert sorted(t.result.status_code for t in held) == [200, 200, 429, 429, 429, 429]
    # The leases were given back: the tenant is admitted again.
    assert server.call("a", "GET", "/api/workflows/").status_code == 200


def test_two_writers_at_the_last_slot_exactly_one_succeeds(server, tenant_a, tenant_b):
    set_limits(tenant_a, rows_per_model=1)
    responses = parallel([lambda i=i: server.create("a", f"race{i}") for i in range(8)])
    assert sorted(r.status_code for r in responses) == [201] + [403] * 7
    assert {r.json()["code"] for r in responses if r.status_code == 403} == {"quota_exceeded"}
    assert rows_by_tenant() == {tenant_a.pk: 1}
    assert server.create("b", "fine").status_code == 201


def _requests_by_tenant(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(
            r'ameide_tenant_requests_total\{status="\w+",tenant="([\w-]+)"\} (\S+)', line
        )
        if match:
            totals[match.group(1)] = totals.get(match.group(1), 0) + float(match.group(2))
    return totals


def test_metrics_add_up_every_worker_with_bounded_tenant_labels(server):
    assert requests.get(server.base + "/metrics", timeout=10).status_code == 404  # no token
    scrape = lambda: requests.get(  # noqa: E731
        server.base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    first = scrape()
    assert first.status_code == 200, first.text[:500]
    before = _requests_by_tenant(first.text)
    answered = parallel([lambda: server.call("a", "GET", "/api/me/") for _ in range(30)])
    answered += parallel([lambda: server.call("b", "GET", "/api/me/") for _ in range(5)])
    assert {r.status_code for r in answered} == {200}
    after = _requests_by_tenant(scrape().text)
    # Every request of every worker process is counted, exactly once.
    assert sum(after.values()) - sum(before.values()) == 35
    # At most the top tenant (TENANCY_METRICS_TOP_TENANTS=1) is named; B, with fewer
    # requests today than A, is "other" once A leads.
    assert set(after) <= {"alpha", "bravo", "other"} and len(set(after) - {"other"}) <= 2
    assert after.get("alpha", 0) - before.get("alpha", 0) >= 28
    assert after.get("bravo", 0) == before.get("bravo", 0)
