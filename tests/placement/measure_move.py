"""A move of a tenant of 100,000 rows, there and back, with one writer of the moving tenant
and one of another tenant running throughout (docs/placement.md, "Moving a tenant").

Not a test (pytest collects it only when named): prints rows/s of the copy, the freeze window
(the moving tenant's writes refused, from the freeze to the switch's commit), each step's
seconds and the other tenant's write latency before and during the move.

    AMEIDE_TEST_DB_NAME=test_x .venv/bin/python -m pytest tests/placement/measure_move.py -s
"""

from __future__ import annotations

import json
import threading
import time

from django.db import connections

from bench.orm_load import Load, percentile
from tenants.context import tenant_context
from tenants.models import Tenant
from tests.placement.move_support import clean_up
from tests.rls.support import COMMITTED
from tests.tenants.cli_support import tenants
from workflows.models import Workflow, WorkflowRun

pytestmark = COMMITTED
WORKFLOWS = 50_000  # and as many runs: 100,000 rows


def _seed(tenant: Tenant, count: int) -> None:
    with tenant_context(tenant):
        for start in range(0, count, 5000):
            made = Workflow.objects.bulk_create(
                [
                    Workflow(name=f"seed {i}", description="x" * 40)
                    for i in range(start, start + 5000)
                ]
            )
            WorkflowRun.objects.bulk_create([WorkflowRun(workflow=w, input={"n": 1}) for w in made])


def test_measure():
    acme = Tenant.objects.create(slug="acme", external_id="acme", name="Acme")
    other = Tenant.objects.create(slug="other", external_id="other", name="Other")
    _seed(acme, WORKFLOWS)
    _seed(other, 1000)
    try:
        for target in (["schema", "pmove_one"], ["shared"]):
            stop = threading.Event()
            loads = [Load(t, stop, prefix=f"m {target[0]} ") for t in (acme, other)]
            threads = [threading.Thread(target=load.write) for load in loads]
            for thread in threads:
                thread.start()
            time.sleep(3)
            before = list(loads[1].write_seconds)
            summary = json.loads(tenants("move", "acme", "--to", *target, "--json")[0])
            during = loads[1].write_seconds[len(before) :]
            stop.set()
            for thread in threads:
                thread.join()
            stats = summary["stats"]
            print(  # noqa: T201 - the measurement
                f"\nto {target}: {sum(stats['copied'].values())} rows, copy "
                f"{stats['copy_rows_per_second']} rows/s; freeze {stats['freeze_ms']} ms "
                f"(lock {stats['freeze_locked_ms']} ms); rounds {stats['rounds']}; steps "
                f"{stats['seconds']}; moving tenant refused {loads[0].refused}; other tenant "
                f"writes p50/p99 before {percentile(before, 0.5) * 1000:.1f}/"
                f"{percentile(before, 0.99) * 1000:.1f} ms, during {percentile(during, 0.5) * 1000:.1f}/"
                f"{percentile(during, 0.99) * 1000:.1f} ms ({len(before)} and {len(during)} writes)"
            )
            assert not loads[0].errors and not loads[1].errors
    finally:
        clean_up()
        connections.close_all()
