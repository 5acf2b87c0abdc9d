"""Real servers, real connection reuse: gunicorn gthread (8 threads, and 1 thread with a
persistent connection or a pool of one) and PgBouncer in transaction mode with one server
connection. Interleaved requests of two tenants and anonymous callers, some failing mid-view;
the probe (tests/rls/probe.py) checks every request on the server (THREATS 3, 19, 31).

Credentials: session cookies of a member of A and of B (made by the test client) and, in the
gthread test, bearer tokens of the development issuer (accounts/dev_issuer.py) served by the
same gunicorn, whose tenant claim names A or B.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.rls.support import (
    COMMITTED,
    Caller,
    child_environment,
    connection_kwargs,
    database_url,
    gunicorn_server,
    pgbouncer,
)

pytestmark = [COMMITTED, pytest.mark.slow]


class Load:
    """Sends probe requests from a pool of client threads, one keep-alive connection each."""

    def __init__(self, base: str, *, concurrency: int) -> None:
        self.host, self.port = base.removeprefix("http://").split(":")
        self.concurrency = concurrency
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc) -> None:
        for conn in self.opened:
            conn.close()

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "conn", None) is None:
            self.local.conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
            self.opened.append(self.local.conn)
        return self.local.conn

    def get(self, path: str, caller: Caller) -> tuple[int, dict | None]:
        headers = {"X-Expect-Tenant": caller.tenant}
        if caller.cookie:
            headers["Cookie"] = f"sessionid={caller.cookie}"
        if caller.token:
            headers["Authorization"] = f"Bearer {caller.token}"
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self.local.conn = None
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(body) if is_json else None

    def run(self, plan: list[tuple[Caller, str]]) -> list[tuple[Caller, str, int, dict | None]]:
        def one(step):
            caller, query = step
            status, body = self.get(f"/probe/state/?{query}", caller)
            return caller, query, status, body

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, plan))

    def tally(self) -> dict:
        return self.get("/probe/tally/", Caller("tally", "", ""))[1]


def interleaved_plan(callers: dict[str, Caller], *, count: int, seed: int) -> list:
    """A and B (90% together) and anonymous callers (10%), 3% failing in Python and 2% in SQL
    mid-view."""
    rng = random.Random(seed)
    weights = [
        10 if caller.tenant == "" else 90 / (len(callers) - 1) for caller in callers.values()
    ]
    plan = []
    for _ in range(count):
        caller = rng.choices(list(callers.values()), weights=weights)[0]
        roll = rng.random()
        query = "boom=python" if roll < 0.03 else "boom=sql" if roll < 0.05 else "n=1"
        plan.append((caller, query))
    return plan


def assert_no_leak(results, *, clean_start: bool = True) -> None:
    """Client side: every answered request saw exactly its credential's tenant."""
    for caller, query, status, body in results:
        if "boom" in query:
            assert status == 500, (caller, query, status)
            continue
        assert status == 200, (caller, query, status, body)
        assert body["ok"], body
        assert body["principal"] == body["context"] == caller.tenant, body
        assert (body["setting"] or "") == caller.tenant, body
        assert set(body["raw"]) <= {int(caller.tenant)} if caller.tenant else body["raw"] == []
        if clean_start:
            assert body["start"] in (None, ""), body


def test_gunicorn_gthread_a_few_thousand_interleaved_requests(callers, token_callers):
    """THREATS 31: 8 worker threads, persistent connections, 2000 requests of session and
    bearer-token callers of A and B and anonymous ones, forced failures."""
    port, tokens = token_callers
    everyone = {**callers, **tokens}
    env = child_environment(
        CONN_MAX_AGE="60",
        DEBUG="true",  # the development issuer exists only with DEBUG on
        DEV_ISSUER_ENABLED="true",
        DEV_ISSUER_URL=f"http://127.0.0.1:{port}/dev-issuer",
    )
    plan = interleaved_plan(everyone, count=2000, seed=31)
    with gunicorn_server(threads=8, env=env, port=port) as base, Load(base, concurrency=16) as load:
        # First use of each token provisions its user, one at a time.
        warm_up = load.run([(tokens["a token"], "n=1"), (tokens["b token"], "n=1")])
        results = load.run(plan)
        tally = load.tally()
    assert [status for *_, status, _ in warm_up] == [200, 200]
    assert tally == {"checked": len(plan) + 2, "mismatches": 0, "dirty_start": 0}
    assert {body["via"] for *_, body in results if body and body["principal"]} == {
        "session",
        "bearer",
    }
    assert_no_leak(results)
    answered = [body for *_, body in results if body]
    assert len({body["thread"] for body in answered}) > 1  # really served by several threads
    assert sum(1 for _, q, *_ in results if "boom" in q) > 50


@pytest.mark.parametrize("connections", ["persistent", "pool of one"])
def test_one_thread_reusing_one_connection_after_failures(callers, connections):
    """THREATS 3, 31: CONN_MAX_AGE > 0 (or Django's psycopg pool), one thread: A fails
    mid-view, then B and an anonymous caller on the same PostgreSQL session."""
    if connections == "persistent":
        env = child_environment(CONN_MAX_AGE="60")
    else:
        env = child_environment(CONN_MAX_AGE="0", PROBE_DB_POOL="true")
    a, b, anonymous = callers["a"], callers["b"], callers["anonymous"]
    steps = [
        (a, "n=1"),
        (a, "boom=python"),
        (b, "n=1"),
        (anonymous, "n=1"),
        (a, "boom=sql"),
        (b, "n=1"),
        (anonymous, "n=1"),
        (a, "n=1"),
    ]
    with gunicorn_server(threads=1, env=env) as base, Load(base, concurrency=1) as load:
        results = load.run(steps)
        # Misbehaving SQL leaves a session-level tenant behind: the next requests start with
        # it on the session, yet none of their statements sees it.
        rogue = load.run([(a, f"rogue={b.tenant}"), (anonymous, "n=1"), (a, "n=1"), (b, "n=1")])
        tally = load.tally()
    assert_no_leak(results)
    assert_no_leak(rogue, clean_start=False)
    assert [body["start"] for *_, body in rogue[1:]] == [b.tenant] * 3
    pids = {body["pid"] for *_, body in results + rogue if body}
    assert len(pids) == 1, "expected one PostgreSQL session reused by every request"
    assert tally == {"checked": 12, "mismatches": 0, "dirty_start": 3}


@pytest.mark.pgbouncer
def test_pgbouncer_transaction_pooling_one_server_connection(callers):
    """THREATS 3: PgBouncer (transaction mode, one server connection) between gunicorn's eight
    threads and PostgreSQL; every transaction of every client lands on the same session."""
    with pgbouncer(pool_size=1) as port:
        runtime = {**connection_kwargs(as_owner=False), "host": "127.0.0.1", "port": port}
        env = child_environment(
            DATABASE_URL=database_url(runtime),
            DISABLE_SERVER_SIDE_CURSORS="true",
            CONN_MAX_AGE="60",
            # Consecutive transactions of one client run on any server backend here.
            TENANCY_SCOPE_BIND_BACKEND="false",
        )
        env.pop("DATABASE_OWNER_URL", None)  # a runtime process is never given the owner
        plan = interleaved_plan(callers, count=400, seed=3)
        with gunicorn_server(threads=8, env=env) as base, Load(base, concurrency=12) as load:
            results = load.run(plan)
            clean = load.tally()
            a, b = callers["a"], callers["b"]
            # Plain ids, and each request's own signed scope left at session level for the
            # other tenant's next request on the shared server connection.
            rogue_plan = [(a, f"rogue={b.tenant}"), (b, "rogue=self"), (a, "rogue=self")] * 10
            rogue = load.run(rogue_plan + interleaved_plan(callers, count=100, seed=4))
            after = load.tally()
    assert clean == {"checked": len(plan), "mismatches": 0, "dirty_start": 0}
    assert_no_leak(results)
    answered = [body for *_, body in results if body]
    assert {body["disable_server_side_cursors"] for body in answered} == {True}
    assert len({body["pid"] for body in answered}) == 1, "expected one server connection"
    # Session-level values left by misbehaving SQL travel to other clients through PgBouncer
    # (the start of later requests shows them), and still no statement sees them.
    assert after["mismatches"] == 0
    assert after["dirty_start"] > 0
    assert_no_leak(rogue, clean_start=False)
