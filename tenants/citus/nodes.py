"""Where a tenant's rows are on a Citus cluster: its shard group, whether it is its own, the node.

Read-only, from Citus's metadata (readable by every role), so `tenants list` and `show` can
print a tenant's node as the runtime role, and `tenants move --to node` can plan from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections

from tenants.citus.placement import DISTRIBUTED, table_plan

# Only active primaries that may hold shards: the coordinator (group 0) holds none of ours.
WORKERS_SQL = (
    "SELECT nodeid, nodename, nodeport, shouldhaveshards FROM pg_dist_node "
    "WHERE noderole = 'primary' AND isactive AND groupid <> 0 ORDER BY nodename, nodeport"
)

# For each tenant id: its shard of the anchor table, whether the shard's hash range is that
# one value (isolated), and the node of its placement. One statement for any number of ids.
TENANT_SHARDS_SQL = (
    "SELECT t.id, s.shardid, s.shardminvalue = s.shardmaxvalue, n.nodename, n.nodeport "
    "FROM unnest(%s::bigint[]) AS t(id) "
    "JOIN pg_dist_shard s ON s.shardid = get_shard_id_for_distribution_column(%s, t.id) "
    "JOIN pg_dist_placement p ON p.shardid = s.shardid "
    "JOIN pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary'"
)


@dataclass(frozen=True)
class Worker:
    node_id: int
    host: str
    port: int
    should_have_shards: bool

    @property
    def name(self) -> str:
        """The worker as Citus knows it, and as `tenants move --to node` takes it."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TenantShard:
    tenant_id: int
    shard_id: int  # of the anchor table; the colocated tables' shards move with it
    isolated: bool  # the shard holds this tenant's hash value only
    node: str  # host:port

    def as_dict(self) -> dict:
        return {"node": self.node, "own_shard": self.isolated, "shard_id": self.shard_id}


def on_citus(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
    return cursor.fetchone() is not None


def distributed_tables(cursor) -> list[str]:
    """The tenant tables Citus distributes, anchor (the one the others are colocated with)
    first; empty before `tenants distribute`."""
    cursor.execute(
        "SELECT logicalrelid::regclass::text FROM pg_dist_partition WHERE partmethod = 'h'"
    )
    present = {table for (table,) in cursor.fetchall()}
    cursor.execute(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind IN ('r', 'p') "
        "AND c.relnamespace = current_schema()::regnamespace ORDER BY 1"
    )
    plan = table_plan(tables=[name for (name,) in cursor.fetchall()])
    return [p.table for p in plan if p.kind == DISTRIBUTED and p.table in present]


def workers(cursor) -> list[Worker]:
    cursor.execute(WORKERS_SQL)
    return [Worker(*row) for row in cursor.fetchall()]


def tenant_shards(*, tenant_ids: list[int], using: str = "default") -> dict[int, TenantShard]:
    """tenant id -> its shard and node; empty off Citus or before `tenants distribute`."""
    if not tenant_ids:
        return {}
    with connections[using].cursor() as cursor:
        if not on_citus(cursor):
            return {}
        tables = distributed_tables(cursor)
        if not tables:
            return {}
        cursor.execute(TENANT_SHARDS_SQL, [list(tenant_ids), tables[0]])
        return {
            tenant_id: TenantShard(tenant_id, shard_id, isolated, f"{host}:{port}")
            for tenant_id, shard_id, isolated, host, port in cursor.fetchall()
        }
