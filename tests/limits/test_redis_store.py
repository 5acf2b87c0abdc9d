"""The Redis store's connection per thread (limits.store._Line), against a redis-server of the
test's own: a release does not wait for Redis, the thread's next admission comes after it, a
refused release is logged and harms nothing else, a flushed script cache is loaded again, a
forked child never shares its parent's socket, two threads' lease ids never collide, and
replies are parsed by hiredis."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading

import pytest
import redis

from limits.conf import Limits
from limits.store import RedisStore
from tests.limits.support import redis_server
from tests.rls.support import free_port

ONE_AT_A_TIME = Limits(
    plan="test",
    statement_timeout_ms=0,
    requests_per_second=100_000,
    burst=100_000,
    concurrent_requests=1,
    rows_per_model=0,
    storage_mb=0,
)

MANY_AT_A_TIME = dataclasses.replace(ONE_AT_A_TIME, concurrent_requests=1_000)


@pytest.fixture
def server():
    with redis_server(port=free_port()) as running:
        yield running


@pytest.fixture
def store(server, settings):
    settings.TENANCY_REDIS_TIMEOUT_SECONDS = 0.5
    settings.TENANCY_REDIS_PREFIX = "store-test:"
    store = RedisStore(server.url)
    yield store
    store.line().reset()  # this thread's connection, closed rather than left to the collector


@pytest.fixture
def peek(server):
    return redis.Redis.from_url(server.url)


def test_a_release_does_not_wait_for_redis(server, store, peek):
    _, lease = store.admit(tenant_id=1, limits=ONE_AT_A_TIME)
    assert lease is not None
    os.kill(server.process.pid, signal.SIGSTOP)  # Redis takes the bytes but answers nothing
    try:
        store.release(tenant_id=1, lease=lease)  # waited past the timeout and raised, before
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    # The release ran before this thread's next admission: the one slot is free again.
    _, again = store.admit(tenant_id=1, limits=ONE_AT_A_TIME)
    assert again is not None and again != lease
    assert peek.zrange("store-test:busy:1", 0, -1) == [again.encode()]


def test_replies_are_parsed_by_hiredis(store):
    # Redis's C parser (the redis[hiredis] dependency): about a quarter of an admission's CPU
    # inside a request went to redis-py's Python parser (docs/limits.md).
    store.admit(tenant_id=6, limits=ONE_AT_A_TIME)
    assert type(store.line().connection._parser).__name__ == "_HiredisParser"


def test_every_admission_of_a_thread_comes_after_its_release(store):
    leases = set()
    for _ in range(300):
        decision, lease = store.admit(tenant_id=2, limits=ONE_AT_A_TIME)
        assert decision.allowed and lease is not None
        leases.add(lease)
        store.release(tenant_id=2, lease=lease)
    assert len(leases) == 300


def test_lease_ids_of_concurrent_threads_never_collide(store):
    # A lease id is the line's random part and a counter: two threads' lines, each counting
    # from zero, must still never hand out the same id (ZADD would merge their leases).
    leases: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def admit(into: list[str]) -> None:
        barrier.wait()
        for _ in range(200):
            _, lease = store.admit(tenant_id=5, limits=MANY_AT_A_TIME)
            into.append(lease)
        store.line().reset()  # the thread's own connection, closed before the thread ends

    threads = [threading.Thread(target=admit, args=(into,)) for into in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(leases[0]) == len(leases[1]) == 200
    assert not set(leases[0]) & set(leases[1])
    assert len(set(leases[0])) == 200


def test_a_refused_release_is_logged_and_the_next_admission_answers(store, peek, caplog):
    peek.set("store-test:busy:3", "not a sorted set")  # ZREM on it gets WRONGTYPE
    store.release(tenant_id=3, lease="l")
    with caplog.at_level(logging.WARNING, logger="limits.store"):
        decision, lease = store.admit(tenant_id=4, limits=ONE_AT_A_TIME)
    assert decision.allowed and lease is not None
    assert peek.zrange("store-test:busy:4", 0, -1) == [lease.encode()]
    assert any("WRONGTYPE" in record.getMessage() for record in caplog.records)


def test_a_flushed_script_cache_is_loaded_again(store, peek):
    assert store.admit(tenant_id=5, limits=ONE_AT_A_TIME)[1] is not None
    peek.script_flush()  # what a restarted Redis looks like to EVALSHA
    decision, lease = store.admit(tenant_id=6, limits=ONE_AT_A_TIME)
    assert decision.allowed and lease is not None


def test_a_forked_child_talks_over_a_connection_of_its_own(store):
    assert store.admit(tenant_id=7, limits=ONE_AT_A_TIME)[1] is not None  # the parent's line
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        outcome = b"ok"
        try:
            for _ in range(200):
                _, lease = store.admit(tenant_id=8, limits=ONE_AT_A_TIME)
                store.release(tenant_id=8, lease=lease)
        except BaseException as exc:  # noqa: BLE001 (anything goes back to the parent)
            outcome = repr(exc).encode()
        os.write(writer, outcome)
        os._exit(0)
    os.close(writer)
    for _ in range(200):
        _, lease = store.admit(tenant_id=9, limits=ONE_AT_A_TIME)
        assert lease is not None
        store.release(tenant_id=9, lease=lease)
    with os.fdopen(reader, "rb") as pipe:
        assert pipe.read() == b"ok"
    os.waitpid(child, 0)
