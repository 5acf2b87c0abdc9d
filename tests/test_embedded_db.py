"""The embedded server survives a client killed mid-write (issue 9.8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ameide.embedded_db import DATA_DIR, PID_LIST, PROJECT_ROOT


def _manage(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_OWNER_URL")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("damage", ["", "[1, 2", "\\x00garbage"])
def test_a_damaged_pid_list_does_not_stop_the_next_command(damage):
    (DATA_DIR / PID_LIST).write_text(damage)
    result = _manage("check")
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_killed_server_process_group_leaves_a_usable_state():
    """`make run` stopped with SIGTERM to its process group, at a random moment of start-up."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_OWNER_URL")}
    for delay in (0.05, 0.2, 0.5):
        process = subprocess.Popen(
            [sys.executable, "manage.py", "check"],
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        result = _manage("check")
        assert result.returncode == 0, result.stderr[-2000:]
