"""A move under load: threads write and read the moving tenant and another tenant for the
whole move (shared -> schema -> shared, and shared -> the dedicated database on the other
server -> shared). Afterwards every acknowledged write exists exactly
once with its acknowledged content, nothing unacknowledged exists, no row is in the wrong
tenant or placement, reads never failed, and the freeze window is measured (printed with
`-s`; no threshold)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.db import close_old_connections

from bench.orm_load import Load, percentile
from tenants.context import tenant_context
from tenants.models import Tenant
from tests import dedicated
from tests.placement.move_support import clean_up, placed_rows, private_rows, triggers
from tests.tenants.cli_support import tenants
from workflows.models import Workflow, WorkflowRun

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES),
    pytest.mark.slow,
]
SEED_WORKFLOWS = 3000  # and as many runs: 6,000 rows of the moving tenant
# Where the moving tenant goes and comes back from: (--to arguments, where its rows are).
ROUTES = {
    "schema": [(["schema", "pmove_one"], "pmove_one"), (["shared"], "public")],
    **(
        {
            "database": [
                (["database", dedicated.FAR], f"database:{dedicated.FAR}"),
                (["shared"], "public"),
            ]
        }
        if dedicated.ENABLED
        else {}
    ),
}


def _seed(tenant: Tenant) -> None:
    with tenant_context(tenant):
        workflows = Workflow.objects.bulk_create(
            [Workflow(name=f"seed {i}", description="seed") for i in range(SEED_WORKFLOWS)]
        )
        WorkflowRun.objects.bulk_create([WorkflowRun(workflow=w) for w in workflows])


def _check(load: Load, *, schema: str) -> None:
    """Every acknowledged workflow once, in `schema` only, with its acknowledged content."""
    rows = placed_rows(load.tenant.pk)
    assert set(rows) == {schema}, f"{load.tenant.slug} has rows in {sorted(rows)}"
    workflows = rows[schema]["workflows_workflow"]
    names = [name for _, name, _ in workflows]
    assert len(names) == len(set(names)), "a workflow exists twice"
    loaded = {name for name in names if name.startswith(load.prefix)}
    assert loaded == set(load.expected), (
        f"missing {sorted(set(load.expected) - loaded)[:5]}, "
        f"unacknowledged {sorted(loaded - set(load.expected))[:5]}"
    )
    with tenant_context(Tenant.objects.get(pk=load.tenant.pk)):
        seen = dict(
            Workflow.objects.filter(name__startswith=load.prefix).values_list("name", "description")
        )
        assert seen == load.expected
        assert Workflow.objects.filter(name__startswith="seed ").count() == SEED_WORKFLOWS


@pytest.mark.parametrize("route", ROUTES)
def test_a_move_under_load_keeps_every_acknowledged_write_once(route, settings):
    # An operation holds its Tenant row for milliseconds; the source of a move to or from a
    # dedicated database, or out of the shared tables, stays frozen well beyond that after the
    # switch on a busy machine.
    settings.TENANCY_MOVE_STALE_SECONDS = 2.0
    acme = Tenant.objects.create(slug="acme", external_id="acme", name="Acme")
    other = Tenant.objects.create(slug="other", external_id="other", name="Other")
    _seed(acme)
    _seed(other)
    try:
        for target, schema in ROUTES[route]:
            stop = threading.Event()
            loads = [Load(t, stop, prefix=f"load to {schema} ") for t in (acme, other)]
            threads = [
                threading.Thread(target=work) for load in loads for work in (load.write, load.read)
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # writes under way before the move starts
            summary = json.loads(tenants("move", "acme", "--to", *target, "--json")[0])
            time.sleep(0.5)  # and after it: routed to the new placement
            stop.set()
            for thread in threads:
                thread.join()
            close_old_connections()
            for load in loads:
                assert load.errors == []
                assert load.reads > 0
            assert summary["outcome"] == "done"
            _check(loads[0], schema=schema)
            _check(loads[1], schema="public")
            assert triggers() == [] and private_rows() == (0, 0)
            stats = summary["stats"]
            print(  # noqa: T201 - the measurement this test reports
                f"\nmove to {target}: {sum(stats['copied'].values())} rows copied at "
                f"{stats['copy_rows_per_second']} rows/s, catch-up rounds {stats['rounds']}, "
                f"freeze {stats['freeze_ms']} ms (lock {stats['freeze_locked_ms']} ms), "
                f"moving tenant's writes refused {loads[0].refused} times, acknowledged "
                f"{len(loads[0].write_seconds)}; other tenant's writes p50 "
                f"{percentile(loads[1].write_seconds, 0.5) * 1000:.1f} ms p99 "
                f"{percentile(loads[1].write_seconds, 0.99) * 1000:.1f} ms, refused "
                f"{loads[1].refused}; seconds per step {stats['seconds']}"
            )
            assert loads[1].refused == 0  # the freeze is the moving tenant's only
    finally:
        clean_up()
