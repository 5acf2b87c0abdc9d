"""What routing by placement adds to each transaction's prefix (docs/placement.md).

Not a test (pytest collects it only when named): a quick timing whose numbers go into the docs.
Each transaction is one autocommit statement (`SELECT count(*) FROM workflows_workflow`, a few
rows), so the prefix is sent every time; rounds interleave three set-ups on one connection:

  before     the prefix without a search path (what the backend sent before placement)
  shared     the prefix with the search path resolved in the database, tenant in public
  schema     the same, tenant in a dedicated schema

and then the routing function alone on the server, against the scope check it repeats.

    AMEIDE_TEST_DB_NAME=test_x .venv/bin/python -m pytest tests/placement/measure_routing_cost.py -s
"""

from __future__ import annotations

import statistics
import time

import pytest
from django.db import connections

from tenants.context import tenant_context
from tenants.db.backend.base import DatabaseWrapper
from tests.rls.support import COMMITTED
from workflows.models import Workflow

pytestmark = COMMITTED

TRANSACTIONS, ROUNDS = 1000, 11


@pytest.mark.parametrize("placements", [("shared", "schema")], indirect=True)
def test_measure(tenant_a, tenant_b, placements, monkeypatch):
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            for i in range(5):
                Workflow.objects.create(name=f"w{i}")
    wrapper = connections.create_connection("default")
    routed = DatabaseWrapper._routed

    def run(tenant) -> float:
        with tenant_context(tenant), wrapper.cursor() as cursor:
            start = time.perf_counter()
            for _ in range(TRANSACTIONS):
                cursor.execute("SELECT count(*) FROM workflows_workflow")
                assert cursor.fetchone()[0] == 5
            return (time.perf_counter() - start) / TRANSACTIONS * 1e6

    results: dict[str, list[float]] = {"before": [], "shared": [], "schema": []}
    run(tenant_a), run(tenant_b)  # warm: connection, prepared statements
    for _ in range(ROUNDS):
        monkeypatch.setattr(DatabaseWrapper, "_routed", lambda self, scope, p, q: (p, q))
        results["before"].append(run(tenant_a))
        monkeypatch.setattr(DatabaseWrapper, "_routed", routed)
        results["shared"].append(run(tenant_a))
        results["schema"].append(run(tenant_b))
    # The function alone, on the server (no network, no client): N calls in one statement.
    with tenant_context(tenant_b), wrapper.cursor() as cursor:
        for function in ("ameide_private.scope_id('t')", "ameide_private.scope_search_path()"):
            calls = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                cursor.execute(f"SELECT count({function}) FROM generate_series(1, 20000)")
                calls.append((time.perf_counter() - start) / 20000 * 1e6)
            print(f"{function:<36} median {statistics.median(calls):6.2f} us/call (server)")
    wrapper.close()
    for name, values in results.items():
        print(
            f"{name:<7} median {statistics.median(values):7.1f}  min {min(values):7.1f} us/transaction"
        )
