"""What a move's change capture costs writers (docs/placement.md, "Moving a tenant").

Not a test (pytest collects it only when named): a timing whose numbers go into the docs.
Interleaved rounds of one-row autocommit inserts into workflows_workflow:

  other, no triggers     another tenant, no move under way
  other, triggers        another tenant while tenant A's capture triggers are on the table
                         (their WHEN is false for its rows: the function is never called)
  moving, triggers       tenant A itself: the trigger takes the shared advisory lock, checks
                         the freeze and logs the row

    AMEIDE_TEST_DB_NAME=test_x .venv/bin/python -m pytest tests/placement/measure_capture_cost.py -s
"""

from __future__ import annotations

import statistics
import time

import pytest

from tenants.context import tenant_context
from tenants.lifecycle.tables import tenant_tables
from tenants.placement import capture
from tests.placement.move_support import clean_up
from tests.rls.support import COMMITTED
from workflows.models import Workflow

pytestmark = COMMITTED
INSERTS, ROUNDS = 300, 7


def _round(tenant, tag: str) -> float:
    """Median microseconds of one insert."""
    times = []
    with tenant_context(tenant):
        for i in range(INSERTS):
            started = time.perf_counter()
            Workflow.objects.create(name=f"{tag} {i}")
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


@pytest.mark.parametrize("placements", [("shared", "shared")], indirect=True)
def test_measure(tenant_a, tenant_b, placements):
    capture.ensure_objects(using="owner")
    results: dict[str, list[float]] = {
        "other, no triggers": [],
        "other, triggers": [],
        "moving, triggers": [],
    }
    try:
        for r in range(ROUNDS):
            results["other, no triggers"].append(_round(tenant_b, f"n{r}"))
            for table in tenant_tables():
                capture.create_triggers(
                    schema="public",
                    table=table.db_table,
                    pk=table.pk.column,
                    tenant_id=tenant_a.pk,
                    using="owner",
                )
            results["other, triggers"].append(_round(tenant_b, f"t{r}"))
            results["moving, triggers"].append(_round(tenant_a, f"m{r}"))
            for table in tenant_tables():
                capture.drop_triggers(
                    schema="public", table=table.db_table, tenant_id=tenant_a.pk, using="owner"
                )
    finally:
        clean_up()
    for name, values in results.items():
        print(
            f"{name:<20} median of round medians {statistics.median(values):7.0f} µs "  # noqa: T201
            f"(rounds {', '.join(f'{v:.0f}' for v in values)})"
        )
