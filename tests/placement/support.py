"""Every row of a tenant table in every placement: the shared table and each dedicated
schema's, read in one audited cross-tenant block, keyed by (schema, tenant id) so a row in the
wrong placement shows as a difference."""

from __future__ import annotations

from django.db import connection

from tenants.context import unscoped
from tenants.placement.paths import HOME_SCHEMA, search_path_of


def rows_everywhere(table: str, columns: str) -> dict[tuple[str, int], list[tuple]]:
    with unscoped(reason="test: every row of every placement"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT placement_name FROM tenants_tenant WHERE placement = 'schema'"
        )
        schemas = [HOME_SCHEMA, *sorted(name for (name,) in cursor.fetchall())]
        rows: dict[tuple[str, int], list[tuple]] = {}
        for schema in schemas:
            cursor.execute(
                f'SELECT tenant_id, {columns} FROM "{schema}"."{table}" ORDER BY id'  # noqa: S608
            )
            for tenant_id, *values in cursor.fetchall():
                rows.setdefault((schema, tenant_id), []).append(tuple(values))
    return rows


def path_of(tenant) -> str:
    """The search path the application gives `tenant`'s transactions."""
    return search_path_of(tenant.placement_name) if tenant.placement == "schema" else HOME_SCHEMA
