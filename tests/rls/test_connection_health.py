"""A persistent connection is checked before each request without a round trip, and a session
the server ended is still noticed and replaced."""

from __future__ import annotations

import pytest
from django.db import connections

from tests.rls.support import COMMITTED, owner_execute

pytestmark = COMMITTED


@pytest.fixture
def persistent():
    """A connection of the runtime alias of its own, as a gunicorn thread keeps it."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def _last_statement(pid: int) -> str:
    return owner_execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])[0][0]


def test_a_healthy_connection_is_usable_without_asking_the_server(persistent):
    pid = persistent.connection.info.backend_pid
    persistent.connection.execute("SELECT 'marker-before-health-check'")
    assert persistent.is_usable()
    # Django's own check would have sent SELECT 1; the server saw nothing after the marker.
    assert "marker-before-health-check" in _last_statement(pid)


def test_a_session_the_server_ended_is_noticed(persistent):
    pid = persistent.connection.info.backend_pid
    assert owner_execute("SELECT pg_terminate_backend(%s)", [pid]) == [(True,)]
    # The server's FATAL message and EOF arrive shortly after the termination.
    for _ in range(50):
        if not persistent.is_usable():
            break
        owner_execute("SELECT pg_sleep(0.02)")
    assert not persistent.is_usable()
    # What the next request does: request_started, then its first query.
    persistent.close_if_unusable_or_obsolete()
    with persistent.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (new_pid,) = cursor.fetchone()
    assert new_pid != pid


def test_a_connection_inside_a_transaction_is_not_offered(persistent):
    persistent.connection.execute("BEGIN")
    assert not persistent.is_usable()
    persistent.connection.execute("ROLLBACK")
    assert persistent.is_usable()
