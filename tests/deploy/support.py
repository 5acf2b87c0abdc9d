"""Helpers of the deployment tests: the image's gunicorn (deploy/gunicorn.conf.py) serving the
project with production settings against the test database."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.rls.support import ROOT, child_environment, connection_kwargs, database_url, free_port

START_TIMEOUT_SECONDS = 30
GUNICORN_CONFIG = Path(ROOT) / "deploy" / "gunicorn.conf.py"


def server_environment(**overrides: str) -> dict[str, str]:
    """child_environment() with the test database given as URLs (runtime and owner role), as
    on a real deployment: the children then never start or register with the embedded
    server, whose shared state file concurrent processes can corrupt (issue 9)."""
    return child_environment(
        DATABASE_URL=database_url(connection_kwargs(as_owner=False)),
        DATABASE_OWNER_URL=database_url(connection_kwargs(as_owner=True)),
        **overrides,
    )


@contextmanager
def production_server(**overrides: str) -> Iterator[str]:
    """gunicorn with deploy/gunicorn.conf.py and DEBUG off (child_environment), plus
    `overrides`; yields its base URL on a loopback port."""
    port = free_port()
    env = server_environment(
        DJANGO_SETTINGS_MODULE="ameide.settings",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="4",
        GUNICORN_GRACEFUL_TIMEOUT="2",
        **overrides,
    )
    command = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG), "ameide.wsgi"]
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_for(base, process, log)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(base: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{base}/healthz", timeout=5).ok:
                return
        except requests.RequestException:  # not listening, or the worker still booting
            pass
        time.sleep(0.1)
    log.seek(0)
    raise AssertionError(f"gunicorn did not start:\n{log.read()[-4000:]}")


def collect_static(target: Path) -> None:
    """`manage.py collectstatic` into `target`, as the image's build does."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=server_environment(STATIC_ROOT=str(target)),
        check=True,
        capture_output=True,
    )
