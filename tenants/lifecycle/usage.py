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

from django.db import connection, connections, router

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


def _measure(measured: dict, tables, *, placed: bool) -> None:
    """Rows and bytes per (tenant, table) into `measured`, read in the current scope; `placed`:
    each table on the database the router names for it."""
    for table in tables:
        db = connections[router.db_for_read(table.model)] if placed else connection
        quote = db.ops.quote_name
        column = quote(table.model._meta.get_field("tenant").column)
        with db.cursor() as cursor:
            cursor.execute(
                f"SELECT {column}, count(*), COALESCE(sum(pg_column_size(ROW(t.*))), 0) "
                f"FROM {quote(table.db_table)} AS t GROUP BY {column}"
            )
            for tenant_id, rows, size in cursor.fetchall():
                measured[(tenant_id, table.label)] = (rows, int(size))


def tenant_usage(*, tenant: Tenant | None = None) -> list[TenantUsage]:
    """Usage of one tenant (read in its context), or of all tenants (one audited cross-tenant
    pass per table, grouped by tenant: the cost is a scan of each table, not one per tenant;
    plus one pass per tenant in a dedicated schema or database, in its own context)."""
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
        # Each table where the rows are: the tenant's dedicated database for its placed
        # tables (tenants.placement); unscoped(), the shared tables only.
        _measure(measured, tables, placed=tenant is not None)
    if tenant is None:
        # Tenants in dedicated schemas and databases, one by one in their own (unscoped()
        # covers the shared tables only): the cost grows with these tenants, not with shared ones.
        for placed in [t for t in tenants if t.placement != Placement.SHARED]:
            with tenant_context(placed):
                _measure(measured, tables, placed=True)
    for tenant_id, entry in usage.items():
        for table in tables:
            rows, size = measured.get((tenant_id, table.label), (0, 0))
            entry.add(label=table.label, rows=rows, size=size)
    return list(usage.values())
