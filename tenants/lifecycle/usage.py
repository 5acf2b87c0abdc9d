"""Rows and approximate size per tenant and tenant table (`tenants usage`).

Size is measured, not guessed from planner statistics: for each table, one pass over the rows
sums `pg_column_size(ROW(t.*))` per tenant, i.e. the bytes of each row as PostgreSQL forms it
(tuple header and values; a row with out-of-line TOAST values counts them uncompressed). The
row is rebuilt from its values, so the figure does not depend on the plan. Indexes, free space
and page overhead are not included: it estimates the data a tenant holds, comparably between
tenants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.db import connection

from tenants.context import tenant_context, unscoped
from tenants.lifecycle.tables import tenant_tables
from tenants.models import Placement, Tenant


@dataclass
class TenantUsage:
    slug: str
    id: int
    status: str
    rows: int = 0
    bytes: int = 0
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> {rows, bytes}

    def add(self, *, label: str, rows: int, size: int) -> None:
        self.tables[label] = {"rows": rows, "bytes": size}
        self.rows += rows
        self.bytes += size

    def as_dict(self) -> dict:
        return asdict(self)


def tenant_usage(*, tenant: Tenant | None = None) -> list[TenantUsage]:
    """Usage of one tenant (read in its context), or of all tenants (one audited cross-tenant
    pass per table, grouped by tenant: the cost is a scan of each table, not one per tenant;
    plus, for each tenant in a dedicated schema, which that pass does not read, its own pass in
    its context: docs/placement.md)."""
    tenants = [tenant] if tenant is not None else list(Tenant.objects.order_by("slug"))
    usage = {t.pk: TenantUsage(slug=t.slug, id=t.pk, status=t.status) for t in tenants}
    tables = tenant_tables()
    scope = (
        tenant_context(tenant)
        if tenant is not None
        else unscoped(reason="tenants usage: rows and size of every tenant")
    )
    measured: dict[tuple[int, str], tuple[int, int]] = {}
    with scope:
        _measure(tables, measured)
    if tenant is None:
        for placed in tenants:
            if placed.placement == Placement.SCHEMA:
                with tenant_context(placed):
                    _measure(tables, measured)
    for tenant_id, entry in usage.items():
        for table in tables:
            rows, size = measured.get((tenant_id, table.label), (0, 0))
            entry.add(label=table.label, rows=rows, size=size)
    return list(usage.values())


def _measure(tables, measured: dict[tuple[int, str], tuple[int, int]]) -> None:
    """Rows and bytes per (tenant, table) of what the current scope sees."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in tables:
            column = quote(table.model._meta.get_field("tenant").column)
            cursor.execute(
                f"SELECT {column}, count(*), COALESCE(sum(pg_column_size(ROW(t.*))), 0) "
                f"FROM {quote(table.db_table)} AS t GROUP BY {column}"
            )
            for tenant_id, rows, size in cursor.fetchall():
                measured[(tenant_id, table.label)] = (rows, int(size))
