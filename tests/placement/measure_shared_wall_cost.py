"""What the shared tables' placement policy costs a shared tenant's write (docs/placement.md).

Not a test (pytest collects it only when named): a quick timing whose numbers go into the docs.
Each transaction is one autocommit one-row INSERT into workflows_workflow by a shared tenant,
so the scope prefix and the policies' InitPlans run every time; rounds interleave the table
without the policy (dropped by the owner) and with it (made again as migrate makes it), on one
connection, each pair of rounds once with the commit waiting for its WAL flush (as the
application commits) and once without (synchronous_commit off: the statement's own work, the
flush being most of an autocommit write's time and most of its noise); then the policy's
function alone on the server, against the scope check it repeats.

    AMEIDE_TEST_DB_NAME=test_x .venv/bin/python -m pytest tests/placement/measure_shared_wall_cost.py -s
"""

from __future__ import annotations

import os
import statistics
import time

from django.db import connections

from tenants.constraints import shared_placements
from tenants.context import tenant_context
from tenants.db import wall
from tests.rls.support import COMMITTED
from workflows.models import Workflow

pytestmark = COMMITTED

TRANSACTIONS, ROUNDS = 500, 15
TABLE = "workflows_workflow"
INSERT = (
    f"INSERT INTO {TABLE} (tenant_id, name, description, definition, status, created_at, "
    "updated_at) VALUES (%s, gen_random_uuid()::text, '', '{}', 'draft', now(), now())"
)


def _owner(statements: list[str]) -> None:
    with connections["owner"].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_measure(tenant_a):
    policy = wall.placement_policy_sql(
        TABLE, schema="public", placements=shared_placements(Workflow)
    )
    without = [f"DROP POLICY IF EXISTS {wall.PLACEMENT_POLICY} ON {TABLE}"]
    wrapper = connections.create_connection("default")

    def run(commit: str) -> float:
        with tenant_context(tenant_a), wrapper.cursor() as cursor:
            cursor.execute(f"SET synchronous_commit = {commit}")
            for _ in range(20):  # a plan made again after the DDL, warm
                cursor.execute(INSERT, [tenant_a.pk])
            start = time.perf_counter()
            for _ in range(TRANSACTIONS):
                cursor.execute(INSERT, [tenant_a.pk])
            return (time.perf_counter() - start) / TRANSACTIONS * 1e6

    results: dict[tuple[str, str], list[float]] = {}
    loads = [os.getloadavg()[0]]
    try:
        for _ in range(ROUNDS):
            for commit in ("on", "off"):
                _owner(without)
                results.setdefault((commit, "without"), []).append(run(commit))
                _owner(policy)
                results.setdefault((commit, "with"), []).append(run(commit))
            loads.append(os.getloadavg()[0])
    finally:
        _owner(policy)
    with tenant_context(tenant_a), wrapper.cursor() as cursor:
        check = wall.placement_check("public", placements=("shared",))[len("(SELECT ") : -1]
        for function in (f"{wall.PRIVATE}.scope_id('t')", check):
            calls = []
            for _ in range(ROUNDS):
                start = time.perf_counter()
                cursor.execute(f"SELECT count({function}) FROM generate_series(1, 20000)")
                calls.append((time.perf_counter() - start) / 20000 * 1e6)
            print(f"{function[:60]:<60} median {statistics.median(calls):6.2f} us/call (server)")
    wrapper.close()
    for (commit, name), values in results.items():
        print(
            f"synchronous_commit={commit:<3} {name:<8} median {statistics.median(values):7.1f}  "
            f"min {min(values):7.1f} us/transaction"
        )
    for commit in ("on", "off"):
        pairs = zip(results[(commit, "with")], results[(commit, "without")], strict=True)
        print(
            f"synchronous_commit={commit:<3} with - without, median of the rounds' differences: "
            f"{statistics.median(w - o for w, o in pairs):+7.1f} us"
        )
    print(f"load average (1 min) during the rounds: {min(loads):.1f} to {max(loads):.1f}")
