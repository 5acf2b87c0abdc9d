"""Helpers of the limits tests: gunicorn with several worker processes, parallel callers,
the test's hold on the hold view (tests/limits/urls.py), and the Redis database of the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
import redis

from tests.limits.urls import HOLD_KEY
from tests.rls.support import (
    START_TIMEOUT_SECONDS,
    _wait_until,
    connection_kwargs,
    database_name,
    gunicorn_process,
)

# Redis on this machine, a database number of the tests' own. Two suites may run at once on one
# machine (each with its own AMEIDE_TEST_DB_NAME): each keeps its keys under a prefix named
# after its test database and clears only those, so neither empties the other's buckets.
REDIS_TEST_URL = os.environ.get("AMEIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


def redis_prefix() -> str:
    """TENANCY_REDIS_PREFIX of the processes this suite starts."""
    return f"ameide-test:{database_name()}:"


def redis_url() -> str:
    """REDIS_URL of the processes this suite starts, with this suite's keys cleared."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL} (apt-get install redis-server)")
    stale = list(client.scan_iter(match=f"{redis_prefix()}*"))
    if stale:
        client.delete(*stale)
    return REDIS_TEST_URL


class RedisServer:
    """A redis-server of the test's own on a loopback port, without persistence; `stop()`
    kills it (an outage), `start()` brings it back on the same port."""

    def __init__(self, *, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            pytest.fail("redis-server is not installed: scripts/setup-test-tools installs it")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        wait_for(lambda: _answers(client), what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@contextmanager
def redis_server(*, port: int) -> Iterator[RedisServer]:
    server = RedisServer(port=port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def gunicorn_workers(*, env: dict[str, str], port: int, workers: int = 3, threads: int = 4):
    """gunicorn with several worker processes serving tests/limits/server_settings.py;
    yields its base URL and its output (JSON log lines)."""
    # The image's settings (its child_exit hook for Prometheus); the flags after them win.
    extra = ("--config", "deploy/gunicorn.conf.py", "--access-logfile", "/dev/null")
    with gunicorn_process(
        settings="tests.limits.server_settings",
        threads=threads,
        env=env,
        port=port,
        workers=workers,
        extra_args=extra,
    ) as (base, drain):
        # Every worker booted (each logs it): requests are spread over processes.
        _wait_until(
            lambda: drain.tail().count("Booting worker") >= workers, what="workers", drain=drain
        )
        yield base, drain


def parallel(calls: list, *, workers: int = 12) -> list:
    """Run the callables at once from a pool of threads; their results, in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda call: call(), calls))


@contextmanager
def holding() -> Iterator[callable]:
    """Hold the hold view's lock: its requests wait inside the database until the block ends.
    Yields a function returning how many backends wait for it."""
    conn = psycopg.connect(**connection_kwargs(as_owner=True), autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", [HOLD_KEY])

    def waiting() -> int:
        with psycopg.connect(**connection_kwargs(as_owner=True), autocommit=True) as probe:
            row = probe.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s",
                [HOLD_KEY],
            ).fetchone()
        return row[0]

    try:
        yield waiting
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [HOLD_KEY])
        conn.close()


def wait_for(condition, *, what: str) -> None:
    """Poll until `condition()` is true (no threshold on how long it takes, only a give-up)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class Background(threading.Thread):
    """A call run in a thread; `.result` once joined."""

    def __init__(self, call) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.result = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            from django.db import connections

            connections.close_all()  # this thread's connections, before the database is dropped
