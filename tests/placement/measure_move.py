"""A move of a tenant of 100,000 rows, there and back (to a dedicated schema, and to the
dedicated database on the other server), with one writer of the moving tenant and one of
another tenant running throughout (docs/placement.md, "Moving a tenant").

Not a test (pytest collects it only when named): prints rows/s of the copy, the freeze window
(the moving tenant's writes refused, from the freeze to the switch's commit), each step's
seconds and the other tenant's write latency before and during the move.

    AMEIDE_TEST_DB_NAME=test_x .venv/bin/python -m pytest tests/placement/measure_move.py -s \
        [-k schema | -k database]
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import connections

from tenants.context import tenant_context
from tenants.models import Tenant
from tests import dedicated
from tests.placement.move_support import clean_up
from tests.placement.test_move_under_load import ROUTES, Load, _percentile
from tests.tenants.cli_support import tenants
from workflows.models import Workflow, WorkflowRun

pytestmark = pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)
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


@pytest.mark.parametrize("route", ROUTES)
def test_measure(route, settings):
    settings.TENANCY_MOVE_STALE_SECONDS = 2.0  # as the under-load test (per-request rows)
    acme = Tenant.objects.create(slug="acme", external_id="acme", name="Acme")
    other = Tenant.objects.create(slug="other", external_id="other", name="Other")
    _seed(acme, WORKFLOWS)
    _seed(other, 1000)
    try:
        for target, _ in ROUTES[route]:
            stop = threading.Event()
            loads = [
                Load(t, stop, prefix=f"m {target[0]} ", per_request=route == "database")
                for t in (acme, other)
            ]
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
                f"writes p50/p99 before {_percentile(before, 0.5):.1f}/"
                f"{_percentile(before, 0.99):.1f} ms, during {_percentile(during, 0.5):.1f}/"
                f"{_percentile(during, 0.99):.1f} ms ({len(before)} and {len(during)} writes)"
            )
            assert not loads[0].errors and not loads[1].errors
    finally:
        clean_up()
        connections.close_all()
