"""The Citus part of `tenants check`: every table where tenants.citus.placement puts it, tenant
tables distributed by tenant_id and colocated, every shard with row security and its policies,
and Citus's run-on-nodes functions closed to the runtime role."""

from __future__ import annotations

from django.conf import settings
from django.db import connections

from tenants.citus.distribute import RUN_ON_NODES, citus_placements, row_security, schema_tables
from tenants.citus.placement import COORDINATOR, DISTRIBUTED, GRANT_TABLE, table_plan
from tenants.db import wall

# Run on each shard by run_command_on_shards (%1$s is the shard, twice): RLS enabled and forced, and an
# isolation policy that tests the signed scope. No '%' else: Citus formats the text itself.
SHARD_TEST = (
    "SELECT (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
    "WHERE oid = '%1$s'::regclass) AND EXISTS (SELECT 1 FROM pg_policy "
    "WHERE polrelid = '%1$s'::regclass AND right(polname, 10) = '_isolation' "
    "AND position('ameide_private.scope_id' in pg_get_expr(polqual, polrelid)) > 0)"
)


def citus_findings(*, using: str) -> tuple[list[str], list[str]]:
    """(failures, warnings), one line each; nothing on a database without Citus."""
    findings: list[str] = []
    warnings: list[str] = []
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        if cursor.fetchone() is None:
            return [], []
        plan = table_plan(tables=schema_tables(cursor))
        placed = citus_placements(cursor)
        for placement in plan:
            actual = placed.get(placement.table, COORDINATOR)
            if actual != placement.kind:
                findings.append(
                    f"{placement.table}: {actual} on Citus, should be {placement.kind} "
                    f"({placement.reason}; run `tenants distribute`)"
                )
        cursor.execute(
            "SELECT logicalrelid::regclass::text, column_to_column_name(logicalrelid, partkey), "
            "colocationid FROM pg_dist_partition WHERE partmethod = 'h'"
        )
        distributed = {table: (column, group) for table, column, group in cursor.fetchall()}
        for placement in plan:
            if placement.kind != DISTRIBUTED or placement.table not in distributed:
                continue
            column, group = distributed[placement.table]
            if column != "tenant_id":
                findings.append(f"{placement.table}: distributed by {column}, not tenant_id")
            anchor = distributed.get(placement.colocate_with)
            if anchor is not None and anchor[1] != group:
                findings.append(f"{placement.table}: not colocated with {placement.colocate_with}")
        cursor.execute(
            "SELECT has_function_privilege(%s::regprocedure, 'EXECUTE')", [RUN_ON_NODES[4]]
        )
        if not cursor.fetchone()[0]:
            # The runtime role may not run SQL on the shards (distribute revokes it).
            warnings.append("shards' row security not checked: run `tenants check` as the owner")
            placed = {}
        for placement in plan:
            if placement.table not in placed or not row_security(placement.table):
                continue
            cursor.execute(
                "SELECT shardid, success, result FROM run_command_on_shards(%s, %s)",
                [placement.table, SHARD_TEST],
            )
            for shard, success, result in cursor.fetchall():
                if not success or result != "t":
                    findings.append(
                        f"{placement.table}: shard {shard} lacks forced row security or its "
                        "isolation policy"
                    )
        findings.extend(_grant_check_findings(cursor))
        runtime = settings.TENANCY_RUNTIME_ROLE
        for function in RUN_ON_NODES:
            cursor.execute(
                "SELECT has_function_privilege(%s, %s::regprocedure, 'EXECUTE')",
                [runtime, function],
            )
            if cursor.fetchone()[0]:
                findings.append(
                    f"runtime role {runtime} may call {function.split('(')[0]} "
                    "(SQL on the workers under a chosen application_name)"
                )
    return findings, warnings


def _grant_check_findings(cursor) -> list[str]:
    """The break-glass check reads the grant table's shard by its name (tenants.db.wall): a
    name that is not the shard's any more (the table placed again) admits nothing."""
    cursor.execute(
        "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = to_regclass(%s)", [GRANT_TABLE]
    )
    row = cursor.fetchone()
    if row is None:
        return []  # not placed yet: the placement finding above says so
    cursor.execute(
        "SELECT prosrc FROM pg_proc WHERE proname = 'grant_open' "
        "AND pronamespace = to_regnamespace(%s)",
        [wall.PRIVATE],
    )
    source = cursor.fetchone()
    if source is None or f"breakglass_grant_{row[0]}" not in source[0]:
        return [
            f"{wall.PRIVATE}.grant_open does not read the grants' shard {row[0]} "
            "(run `migrate` or `tenants distribute`)"
        ]
    return []
