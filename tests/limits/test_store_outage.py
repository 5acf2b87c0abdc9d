"""A store outage fails closed: with Redis unreachable, API requests get 503 limits_unavailable
with Retry-After (never a 500, never admitted unchecked), health and pages outside the API keep
answering, and the limits work again when Redis is back, without a restart."""

from __future__ import annotations

import socket

import pytest

from tests.limits.support import Background, holding, redis_server, wait_for
from tests.rls.support import COMMITTED, free_port, rows_by_tenant


@pytest.fixture
def redis(settings):
    with redis_server(port=free_port()) as server:
        # A URL of its own: the store of another URL (another test's) is never reused.
        settings.REDIS_URL = server.url
        yield server


def _assert_refused(response) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "limits_unavailable"
    assert set(response.json()) == {"detail", "code"}  # the API's one error shape
    assert response["Retry-After"] == "5"


@COMMITTED
def test_api_requests_get_503_limits_unavailable_while_redis_is_down(
    redis, client_a, client_b, tenant_a
):
    answered = client_a.get("/api/workflows/")
    assert answered.status_code == 200 and answered["RateLimit"].startswith('"rate";')
    redis.stop()
    _assert_refused(client_a.get("/api/workflows/"))
    _assert_refused(client_b.get("/api/workflows/"))
    # A write is not run either: nothing is written.
    _assert_refused(client_a.post("/api/workflows/", {"name": "unchecked"}, format="json"))
    assert rows_by_tenant() == {}
    # Health, readiness and pages outside the API do not depend on the limits store.
    assert client_a.get("/healthz").status_code == 200
    assert client_a.get("/readyz").json()["status"] == "ready"
    assert client_a.get("/").status_code not in (500, 503)
    redis.start()
    # Back on the same address: the next request reconnects and is admitted.
    assert client_a.get("/api/workflows/").status_code == 200
    created = client_a.post("/api/workflows/", {"name": "checked"}, format="json")
    assert created.status_code == 201, created.content
    assert rows_by_tenant() == {tenant_a.pk: 1}


@COMMITTED
@pytest.mark.urls("tests.limits.urls")
def test_a_request_admitted_before_the_outage_keeps_its_answer(redis, client_a, tenant_a):
    """Redis dies while a request is in progress: its lease cannot be given back, but the work
    is done and its answer stands (the lease expires by itself)."""
    with holding() as waiting:
        held = Background(lambda: client_a.get("/api/test/hold/"))
        held.start()
        wait_for(lambda: waiting() == 1, what="the held request")
        redis.stop()
    held.join(timeout=60)
    assert held.error is None, held.error
    assert held.result.status_code == 200, held.result.content
    assert held.result.json() == {"held": True}
    _assert_refused(client_a.get("/api/workflows/"))
    assert rows_by_tenant() == {}


@pytest.mark.django_db
def test_a_redis_that_does_not_answer_is_an_outage_too(settings, client_a):
    """Connections are accepted but nothing answers (a hung Redis): the call times out after
    TENANCY_REDIS_TIMEOUT_SECONDS and the request is refused, not held or failed with a 500."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        settings.TENANCY_REDIS_TIMEOUT_SECONDS = 0.2
        _assert_refused(client_a.get("/api/workflows/"))
