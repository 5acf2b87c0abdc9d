"""Where rate and concurrency state lives, shared by every process and machine: Redis when
REDIS_URL is set, else PostgreSQL. Never a per-process counter.

Rate is a GCRA (generic cell rate algorithm, a token bucket kept as one timestamp): a tenant may
send `burst` requests at once and `requests_per_second` after that. Concurrency is a set of
leases that expire, so a worker killed mid-request frees its slot after TENANCY_LEASE_SECONDS.
Clocks are the store's own (Redis TIME, PostgreSQL clock_timestamp()), so machines whose clocks
drift still share one bucket.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import os
import threading
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from limits.conf import Limits
from limits.errors import LimitsUnavailable
from tenants.context import no_tenant

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int  # requests that could be sent now
    reset_seconds: float  # until the bucket is full again (allowed) or the next admission


class Store:
    """A store raises LimitsUnavailable when it cannot decide; it never guesses."""

    def admit(self, *, tenant_id: int, limits: Limits) -> tuple[RateDecision, str | None]:
        """The rate decision and, if the rate admits, a lease for one request in progress:
        None when the rate refuses or the tenant has no lease free."""
        raise NotImplementedError

    def release(self, *, tenant_id: int, lease: str) -> None:
        raise NotImplementedError


def _decision(*, allowed: bool, now: float, tat: float, limits: Limits) -> RateDecision:
    interval = 1.0 / limits.requests_per_second
    if not allowed:
        return RateDecision(False, 0, max(tat + interval - limits.burst * interval - now, 0.0))
    remaining = int((now - (tat - limits.burst * interval)) / interval + 1e-9)
    return RateDecision(True, max(remaining, 0), max(tat - now, 0.0))


# Both in one round trip: KEYS[1] bucket, KEYS[2] lease set; ARGV: interval, burst, limit,
# lease seconds, lease id. Returns {allowed, now, tat, admitted}; no lease is taken when the
# rate refuses.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - burst * interval > now then
  return {0, tostring(now), tostring(tat), 0}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {1, tostring(now), tostring(new_tat), 0}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[5])
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[4])) + 1)
return {1, tostring(now), tostring(new_tat), 1}
"""


class RedisStore(Store):
    """Each thread talks to Redis over a connection of its own (_Line), not through redis-py's
    pool and client: checking a connection out and back in, and the client's command
    dispatch, cost more CPU than the two commands themselves (docs/limits.md)."""

    def __init__(self, url: str) -> None:
        timeout = settings.TENANCY_REDIS_TIMEOUT_SECONDS
        # The pool only parses the URL and makes connections; commands never go through it.
        self.pool = redis.ConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        # EVALSHA names the script by its SHA-1 (a name, not a security use).
        self.admit_sha = hashlib.sha1(_ADMIT.encode(), usedforsecurity=False).hexdigest()
        self.prefix = settings.TENANCY_REDIS_PREFIX
        self.local = threading.local()

    def line(self) -> _Line:
        line = getattr(self.local, "line", None)
        if line is None or line.pid != os.getpid():  # a forked child never shares a socket
            line = self.local.line = _Line(
                self.pool.connection_class(**self.pool.connection_kwargs)
            )
        return line

    def admit(self, *, tenant_id: int, limits: Limits) -> tuple[RateDecision, str | None]:
        line = self.line()
        lease = line.next_lease()
        keys_and_args = (
            2,
            f"{self.prefix}rate:{tenant_id}",
            f"{self.prefix}busy:{tenant_id}",
            repr(1.0 / limits.requests_per_second),
            limits.burst,
            limits.concurrent_requests,
            settings.TENANCY_LEASE_SECONDS,
            lease,
        )
        with _unavailable_on(redis.RedisError):
            try:
                reply = line.call("EVALSHA", self.admit_sha, *keys_and_args)
            except NoScriptError:  # a restarted or flushed Redis: load it with this call
                reply = line.call("EVAL", _ADMIT, *keys_and_args)
        allowed, now, tat, admitted = reply
        decision = _decision(
            allowed=bool(int(allowed)), now=float(now), tat=float(tat), limits=limits
        )
        return decision, lease if int(admitted) else None

    def release(self, *, tenant_id: int, lease: str) -> None:
        with _unavailable_on(redis.RedisError):
            self.line().send("ZREM", f"{self.prefix}busy:{tenant_id}", lease)


class _Line:
    """One thread's connection to Redis. `call` sends a command and waits for its reply;
    `send` does not wait: the reply is read before the line's next command.

    Why a release does not wait: the request's answer does not depend on it, and the command
    is on its way to Redis before the response is written to the client. On one connection
    Redis runs commands in the order they were sent, so this thread's next admission comes
    after its release; another connection's admission sent in that instant may still count
    the lease, which can only refuse a request, never admit one more than the limit. A lost
    or failed release expires after TENANCY_LEASE_SECONDS, as before."""

    def __init__(self, connection: redis.Connection) -> None:
        self.connection = connection
        self.pid = os.getpid()
        self.unread = 0
        # Lease ids: a random part per line (a thread of one process) and a counter, unique
        # among every process and machine sharing the store, without a system call for
        # randomness on every request as uuid4() makes.
        self.lease_base = uuid.uuid4().hex[:20]
        self.leases = itertools.count()

    def next_lease(self) -> str:
        return f"{self.lease_base}{next(self.leases)}"

    def call(self, *command):
        # One retry on a fresh connection (the old one may have died with a restarted Redis),
        # no backoff: a hung Redis holds a request for about twice the timeout, then 503.
        try:
            return self._call(command)
        except (RedisConnectionError, RedisTimeoutError):
            return self._call(command)

    def send(self, *command) -> None:
        try:
            self._drain()
            self.connection.send_command(*command)
        except (RedisConnectionError, RedisTimeoutError):
            self.reset()
            raise
        self.unread += 1

    def _call(self, command: tuple):
        try:
            self._drain()
            self.connection.send_command(*command)
            return self.connection.read_response()
        except (RedisConnectionError, RedisTimeoutError):
            self.reset()
            raise

    def _drain(self) -> None:
        while self.unread:
            self.unread -= 1
            try:
                self.connection.read_response()
            except ResponseError as exc:  # that release failed; its lease expires by itself
                logger.warning("lease release refused by Redis, it expires by itself: %s", exc)

    def reset(self) -> None:
        self.unread = 0
        self.connection.disconnect()


_NOW = "extract(epoch FROM clock_timestamp())::float8"
# One statement: the row lock of ON CONFLICT serialises concurrent requests of one tenant.
_TAKE = f"""
INSERT INTO limits_ratestate AS s (tenant_id, tat) VALUES (%(tenant)s, {_NOW} + %(interval)s)
ON CONFLICT (tenant_id) DO UPDATE
  SET tat = GREATEST(s.tat, {_NOW}) + %(interval)s
  WHERE GREATEST(s.tat, {_NOW}) + %(interval)s - %(burst)s * %(interval)s <= {_NOW}
RETURNING tat, {_NOW}
"""
_LEASE_LOCK = zlib.crc32(b"limits.concurrency") & 0x7FFFFFFF


class PostgresStore(Store):
    """Rate and leases in global tables, written in the global scope in autocommit."""

    def admit(self, *, tenant_id: int, limits: Limits) -> tuple[RateDecision, str | None]:
        decision = self.take(tenant_id=tenant_id, limits=limits)
        if not decision.allowed:
            return decision, None
        return decision, self.acquire(tenant_id=tenant_id, limits=limits)

    def take(self, *, tenant_id: int, limits: Limits) -> RateDecision:
        params = {
            "tenant": tenant_id,
            "interval": 1.0 / limits.requests_per_second,
            "burst": limits.burst,
        }
        with _unavailable_on(DatabaseError), no_tenant(), connection.cursor() as cursor:
            cursor.execute(_TAKE, params)
            row = cursor.fetchone()
            if row is not None:
                return _decision(allowed=True, now=row[1], tat=row[0], limits=limits)
            cursor.execute(
                f"SELECT tat, {_NOW} FROM limits_ratestate WHERE tenant_id = %s", [tenant_id]
            )
            tat, now = cursor.fetchone()
        return _decision(allowed=False, now=now, tat=tat, limits=limits)

    def acquire(self, *, tenant_id: int, limits: Limits) -> str | None:
        # The advisory lock makes count-then-insert one step per tenant (other tenants never
        # wait on it); it ends with the transaction.
        with (
            _unavailable_on(DatabaseError),
            no_tenant(),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LEASE_LOCK, _int4(tenant_id)])
            cursor.execute(
                "DELETE FROM limits_concurrencylease WHERE tenant_id = %s "
                "AND expires_at < clock_timestamp()",
                [tenant_id],
            )
            cursor.execute(
                "INSERT INTO limits_concurrencylease (tenant_id, expires_at) "
                "SELECT %(tenant)s, clock_timestamp() + make_interval(secs => %(secs)s) "
                "WHERE (SELECT count(*) FROM limits_concurrencylease WHERE tenant_id = %(tenant)s)"
                " < %(limit)s RETURNING id",
                {
                    "tenant": tenant_id,
                    "secs": settings.TENANCY_LEASE_SECONDS,
                    "limit": limits.concurrent_requests,
                },
            )
            row = cursor.fetchone()
        return str(row[0]) if row else None

    def release(self, *, tenant_id: int, lease: str) -> None:
        with _unavailable_on(DatabaseError), no_tenant(), connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM limits_concurrencylease WHERE id = %s AND tenant_id = %s",
                [int(lease), tenant_id],
            )


@contextmanager
def _unavailable_on(*errors: type[Exception]) -> Iterator[None]:
    """The store's own errors become LimitsUnavailable, which the middleware answers with 503."""
    try:
        yield
    except errors as exc:
        raise LimitsUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _int4(value: int) -> int:
    """Advisory locks take int4 keys; a collision only makes two tenants share a lock."""
    return value % 0x7FFFFFFF


@functools.cache
def _store_for(url: str) -> Store:
    return RedisStore(url) if url else PostgresStore()


def get_store() -> Store:
    return _store_for(settings.REDIS_URL)
