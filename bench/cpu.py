"""CPU time of processes from /proc: gunicorn workers and the PostgreSQL backends serving them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg

TICK_SECONDS = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User plus system time of a process (all its threads), or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * TICK_SECONDS


class BackendCpu:
    """The CPU time of the PostgreSQL backends of one application name, polled while it runs.

    A backend may start during a round (a new connection) or end in it (CONN_MAX_AGE), so the
    poller keeps the last figure of every backend it saw; a round's CPU is the sum of what each
    backend added between the round's start and end, a new backend counting from zero.
    """

    def __init__(
        self, *, connect_kwargs: dict, application_name: str, interval: float = 0.2
    ) -> None:
        self._connect_kwargs = connect_kwargs
        self._name = application_name
        self._interval = interval
        self._latest: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackendCpu:
        self._connection = psycopg.connect(**self._connect_kwargs, autocommit=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._connection.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def poll(self) -> dict[int, float]:
        with self._lock:
            rows = self._connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [self._name]
            ).fetchall()
            for (pid,) in rows:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    self._latest[pid] = seconds
            return dict(self._latest)

    def since(self, start: dict[int, float]) -> float:
        """CPU seconds the backends used since `start` (an earlier poll())."""
        now = self.poll()
        return sum(seconds - start.get(pid, 0.0) for pid, seconds in now.items())
