"""Database down or unreachable (THREATS 29): /readyz and the API answer 503 with Retry-After
within seconds, whatever step of the request first needs the database, and recover without a
restart once it is back."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
from django.db import connections

from tests.rls.support import COMMITTED, free_port

pytestmark = COMMITTED

WITHIN_SECONDS = 5


@contextmanager
def database_unreachable():
    """Point the runtime alias at a closed loopback port, then back."""
    config = connections["default"].settings_dict
    saved = {"HOST": config["HOST"], "PORT": config["PORT"], "OPTIONS": dict(config["OPTIONS"])}
    closed = free_port()
    connections["default"].close()
    # A new OPTIONS dict, so that nothing else holding the old one changes with it.
    options = {**saved["OPTIONS"], "host": "127.0.0.1", "port": closed}
    config.update(HOST="127.0.0.1", PORT=str(closed), OPTIONS=options)
    try:
        yield
    finally:
        connections["default"].close()
        config.update(HOST=saved["HOST"], PORT=saved["PORT"], OPTIONS=saved["OPTIONS"])


def timed_get(http, path: str):
    started = time.monotonic()
    response = http.get(path)
    return response, time.monotonic() - started


def assert_unavailable(response, elapsed: float) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert int(response["Retry-After"]) > 0
    assert elapsed < WITHIN_SECONDS


@pytest.mark.parametrize(
    "path,who",
    [
        ("/readyz", "anonymous"),
        ("/api/workflows/", "member"),  # the principal lookup (session, membership) fails
        ("/api/me/", "member"),
    ],
)
def test_the_database_down_is_a_503_with_retry_after(two_tenants, client, client_a, path, who):
    http = client_a if who == "member" else client
    with database_unreachable():
        response, elapsed = timed_get(http, path)
        assert_unavailable(response, elapsed)
        if path.startswith("/api/"):
            assert response.json()["code"] == "unavailable"
    # Back without a restart.
    response = http.get(path)
    assert response.status_code == (401 if who == "anonymous" and path != "/readyz" else 200)


def test_an_anonymous_read_is_refused_without_the_database(two_tenants, client):
    # Reads run without an explicit transaction (tenants.api), so nothing reaches the database
    # before authentication refuses the caller: a 401, quickly, outage or not.
    with database_unreachable():
        response, elapsed = timed_get(client, "/api/workflows/")
    assert response.status_code == 401 and elapsed < WITHIN_SECONDS


def test_the_list_answers_again_after_the_outage(two_tenants, client_a):
    with database_unreachable():
        assert client_a.get("/api/workflows/").status_code == 503
    response = client_a.get("/api/workflows/")
    assert response.status_code == 200
    assert {w["name"] for w in response.json()["results"]} == {"alpha one", "shared name"}
