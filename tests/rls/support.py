"""Helpers of the row-level security tests: plain psycopg connections as the owner or the
runtime role (no Django backend in between), and the environment that points child processes
(pgbouncer, gunicorn, manage.py) at the test database."""

from __future__ import annotations

import collections
import os
import pathlib
import pwd
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connections

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SECOND_ALIAS = "rls_second"
START_TIMEOUT_SECONDS = 30

# Tests whose data must be committed (other connections, other processes) and whose clean-up
# flushes tables as the owner (the runtime role has no TRUNCATE).
COMMITTED = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


def database_name() -> str:
    return connections["default"].settings_dict["NAME"]


def server_address() -> tuple[str, int]:
    """(host or unix socket directory, port) of the PostgreSQL server under test."""
    config = connections["default"].settings_dict
    options = config.get("OPTIONS", {})
    host = options.get("host") or config.get("HOST") or "localhost"
    port = int(options.get("port") or config.get("PORT") or 5432)
    return host, port


def connection_kwargs(*, as_owner: bool) -> dict:
    """libpq parameters of the test database for the owner or the runtime role."""
    host, port = server_address()
    config = connections.settings["owner" if as_owner else "default"]
    kwargs = {"dbname": database_name(), "host": host, "port": port, "user": config["USER"]}
    if config.get("PASSWORD"):
        kwargs["password"] = config["PASSWORD"]
    return kwargs


@contextmanager
def plain_connection(*, as_owner: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg connection in autocommit that bypasses the tenant backend entirely."""
    conn = psycopg.connect(**connection_kwargs(as_owner=as_owner), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def owner_execute(sql: str, params=None) -> list[tuple]:
    """Run one statement as the owner (RLS does not apply to it: it is a superuser here)."""
    with plain_connection(as_owner=True) as conn, conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def rows_by_tenant(table: str = "workflows_workflow") -> dict[int, int]:
    """What is really in a table, in every placement, read as the owner: {tenant_id: rows}."""
    counts: dict[int, int] = {}
    # The shared table and each dedicated schema's (tenants.placement).
    schemas = owner_execute(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = %s "
        "AND relkind IN ('r', 'p')",
        [table],
    )
    for (schema,) in schemas:
        for tenant_id, n in owner_execute(
            f"SELECT tenant_id, count(*) FROM {schema}.{table} GROUP BY tenant_id"
        ):
            counts[tenant_id] = counts.get(tenant_id, 0) + n
    return counts


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_environment(**overrides: str) -> dict[str, str]:
    """os.environ for a child process (manage.py, gunicorn) that uses this test database."""
    env = dict(os.environ)
    name = database_name()
    if env.get("DATABASE_URL"):
        for key in ("DATABASE_URL", "DATABASE_OWNER_URL"):
            if env.get(key):
                url = urllib.parse.urlsplit(env[key])
                env[key] = urllib.parse.urlunsplit(url._replace(path=f"/{name}"))
    else:
        env["AMEIDE_DB_NAME"] = name
    # DEBUG off as in production; the development issuer is refused without DEBUG (a .env may
    # enable it), so it is off too unless a test turns both on.
    env.update(DEBUG="false", DEV_ISSUER_ENABLED="false", PYTHONPATH=ROOT)
    env.update(overrides)
    return env


def database_url(kwargs: dict) -> str:
    """A DATABASE_URL for libpq parameters (a unix socket directory goes into `host=`)."""
    user = urllib.parse.quote(kwargs["user"])
    password = f":{urllib.parse.quote(kwargs['password'])}" if kwargs.get("password") else ""
    name = kwargs["dbname"]
    host, port = str(kwargs["host"]), kwargs["port"]
    if host.startswith("/"):
        query = urllib.parse.urlencode({"host": host, "port": port})
        return f"postgres://{user}{password}@/{name}?{query}"
    return f"postgres://{user}{password}@{host}:{port}/{name}"


class _Drain(threading.Thread):
    """Reads a child's output so that its pipe never fills; keeps the tail for diagnostics."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.listening = queue.Queue()

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if match:
                self.listening.put(int(match.group(1)))

    def tail(self) -> str:
        return "".join(self.lines)


@contextmanager
def gunicorn_server(
    *, threads: int, env: dict[str, str], port: int = 0, workers: int = 1
) -> Iterator[str]:
    """gunicorn -k gthread serving the project with the probe (tests/rls/probe_settings.py) on
    a loopback port (by default chosen by the OS); yields its base URL."""
    with gunicorn_process(
        settings="tests.rls.probe_settings", threads=threads, env=env, port=port, workers=workers
    ) as (base, _):
        yield base


@contextmanager
def gunicorn_process(
    *,
    settings: str,
    threads: int,
    env: dict[str, str],
    port: int = 0,
    workers: int = 1,
    extra_args: tuple[str, ...] = (),
) -> Iterator[tuple[str, _Drain]]:
    """gunicorn -k gthread with DJANGO_SETTINGS_MODULE `settings` on a loopback port, once
    /healthz answers; yields its base URL and its output. Stopped when the block ends."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "ameide.wsgi:application",
        *extra_args,
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "2",
    ]
    env = {**env, "DJANGO_SETTINGS_MODULE": settings}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    drain = _Drain(process.stdout)
    drain.start()
    try:
        try:
            port = drain.listening.get(timeout=START_TIMEOUT_SECONDS)
        except queue.Empty:
            raise AssertionError(f"gunicorn did not start:\n{drain.tail()}") from None
        base = f"http://127.0.0.1:{port}"
        _wait_until(
            lambda: requests.get(f"{base}/healthz", timeout=2).ok, what="gunicorn", drain=drain
        )
        yield base, drain
    finally:
        _stop(process, drain)


def _stop(process: subprocess.Popen, drain: _Drain) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    drain.join(timeout=5)
    process.stdout.close()


def _wait_until(ready, *, what: str, drain: _Drain | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            if ready():
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not become ready:\n{drain.tail() if drain else ''}")
        time.sleep(0.05)


def _unprivileged_user(host: str) -> tuple[int, int]:
    """(uid, gid) pgbouncer runs as: it refuses root. The owner of the server's socket directory
    when the server is reached over a unix socket (only it may enter), else `nobody`."""
    if host.startswith("/"):
        info = os.stat(host)
        return info.st_uid, info.st_gid
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


@contextmanager
def pgbouncer(*, pool_size: int = 1) -> Iterator[int]:
    """PgBouncer (Debian package `pgbouncer`) in transaction pooling mode in front of the test
    database, with `pool_size` server connections, on a loopback port; yields the port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.fail("pgbouncer is not installed: apt-get install -y pgbouncer (CI installs it)")
    host, port = server_address()
    name = database_name()
    runtime = settings.DATABASES["default"]["USER"]
    workdir = tempfile.mkdtemp(prefix=f"{name}-pgbouncer-")
    listen = free_port()
    config = f"""
[databases]
{name} = host={host} port={port} dbname={name}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = {pool_size}
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {workdir}/pgbouncer.log
pidfile = {workdir}/pgbouncer.pid
"""
    with open(f"{workdir}/pgbouncer.ini", "w") as ini:
        ini.write(config)
    with open(f"{workdir}/users.txt", "w") as users:
        # PgBouncer logs in to PostgreSQL with this password (if the role has one).
        password = settings.DATABASES["default"].get("PASSWORD") or ""
        users.write(f'"{runtime}" "{password}"\n')
    command = [binary, f"{workdir}/pgbouncer.ini"]
    if os.geteuid() == 0:
        uid, gid = _unprivileged_user(str(host))
        os.chown(workdir, uid, gid)
        for file in ("pgbouncer.ini", "users.txt"):
            os.chown(f"{workdir}/{file}", uid, gid)
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    drain = _Drain(process.stdout)
    drain.start()
    try:

        def accepts() -> bool:
            with psycopg.connect(
                host="127.0.0.1", port=listen, dbname=name, user=runtime, connect_timeout=2
            ) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)

        try:
            _wait_until(accepts, what="pgbouncer", drain=drain)
        except AssertionError:
            log_file = pathlib.Path(workdir, "pgbouncer.log")
            log = log_file.read_text() if log_file.exists() else ""
            raise AssertionError(f"pgbouncer did not start:\n{drain.tail()}\n{log}") from None
        yield listen
    finally:
        _stop(process, drain)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class Caller:
    """A client of the test servers: its tenant id and its credential."""

    name: str
    tenant: str  # the tenant id the credential belongs to; "" for anonymous
    cookie: str = ""
    token: str = ""
