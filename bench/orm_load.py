"""Threads that write and read one tenant through the ORM, timing each operation (pair 11, the move tests)."""

from __future__ import annotations

import random
import threading
import time

from django.db import OperationalError, connections

from tenants.context import tenant_context
from tenants.models import Tenant
from tenants.placement.capture import is_frozen_error
from workflows.models import Workflow, WorkflowRun

# How long an operation uses the Tenant row read for an earlier one. A server's admission
# cache keeps a row until the placement change's NOTIFY empties it (within about a second);
# this stays well under the TENANCY_MOVE_STALE_SECONDS the move tests and pair 11 set (2 s).
ROW_SECONDS = 0.5


class Load:
    """Writers and readers of one tenant; what was acknowledged, what was refused, how long
    each operation took and when it started (wall clock, to tell windows apart)."""

    def __init__(
        self,
        tenant: Tenant,
        stop: threading.Event,
        *,
        prefix: str,
        pause: float = 0.002,
    ) -> None:
        self.tenant = tenant
        self._row: tuple[float, Tenant] | None = None  # (read at, the row)
        self.prefix = prefix
        self.stop = stop
        self.pause = pause
        self.expected: dict[str, str] = {}  # name -> description, acknowledged
        self.ids: dict[str, int] = {}
        self.refused = 0  # writes answered "frozen" (each retried)
        self.errors: list[str] = []
        self.writes: list[tuple[float, float]] = []  # (started at, seconds), acknowledged
        self.read_times: list[tuple[float, float]] = []

    @property
    def write_seconds(self) -> list[float]:
        return [seconds for _, seconds in self.writes]

    @property
    def reads(self) -> int:
        return len(self.read_times)

    def _retrying(self, operation):
        while True:
            at, started = time.time(), time.perf_counter()
            try:
                with tenant_context(self.current()):
                    result = operation()
                self.writes.append((at, time.perf_counter() - started))
                return result
            except OperationalError as exc:
                if not is_frozen_error(exc):
                    raise
                self.refused += 1
                time.sleep(0.01)

    def current(self) -> Tenant:
        """The Tenant row of one operation, read again after ROW_SECONDS, as a server's
        admission cache keeps it until a placement change empties it: the router picks a
        dedicated database, and the backend a shared tenant's search path, from the row a
        process loaded (a schema tenant's path is read in the database per transaction)."""
        loaded = self._row
        if loaded is None or time.monotonic() - loaded[0] > ROW_SECONDS:
            loaded = self._row = (time.monotonic(), Tenant.objects.get(pk=self.tenant.pk))
        return loaded[1]

    def write(self) -> None:
        rng = random.Random(self.tenant.pk)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                choice = rng.random()
                if choice < 0.6 or len(self.ids) < 5:
                    name = f"{self.prefix}{n}"
                    created = self._retrying(
                        lambda name=name: Workflow.objects.create(name=name, description="v0")
                    )
                    self.ids[name] = created.pk
                    self.expected[name] = "v0"
                    # By id, as a client's next request names it: the switch may come
                    # between the two, and then the workflow object is of the old database.
                    self._retrying(lambda w=created: WorkflowRun.objects.create(workflow_id=w.pk))
                elif choice < 0.9:
                    name = rng.choice(sorted(self.ids))
                    value = f"v{n}"
                    self._retrying(
                        lambda name=name, value=value: Workflow.objects.filter(
                            pk=self.ids[name]
                        ).update(description=value)
                    )
                    self.expected[name] = value
                else:
                    name = rng.choice(sorted(self.ids))
                    self._retrying(
                        lambda name=name: Workflow.objects.filter(pk=self.ids[name]).delete()
                    )
                    del self.ids[name], self.expected[name]
                time.sleep(self.pause)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            self.errors.append(f"write: {exc!r}")
        finally:
            connections.close_all()

    def read(self) -> None:
        try:
            while not self.stop.is_set():
                at, started = time.time(), time.perf_counter()
                with tenant_context(self.current()):
                    list(Workflow.objects.order_by("-id")[:20])
                self.read_times.append((at, time.perf_counter() - started))
                time.sleep(self.pause)
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            self.errors.append(f"read: {exc!r}")
        finally:
            connections.close_all()


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0-1) of `values` by rank (0.0 for none), in their unit."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def within(timed: list[tuple[float, float]], *, start: float, end: float) -> list[float]:
    """The seconds of the operations that started in [start, end] (wall clock)."""
    return [seconds for at, seconds in timed if start <= at <= end]
