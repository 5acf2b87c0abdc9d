"""The SQL that moves one tenant's rows between two schemas of this database (tenants move).

Every statement runs on the application's connection, in the caller's scope (break-glass:
both placements at once) and transaction; the steps and their order are tenants.placement.moving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connections

from tenants.exceptions import MoveFailed
from tenants.lifecycle.tables import TenantTable

# The initial copy's batches, and the pause after each (a multiple of the batch's time).
COPY_BATCH = 5000
COPY_PAUSE_RATIO = 1.0


def columns_of(table: TenantTable) -> list[str]:
    quote = connections["default"].ops.quote_name
    return [quote(f.column) for f in table.model._meta.concrete_fields]


@contextmanager
def one_snapshot() -> Iterator[None]:
    """The application connection's next transaction in REPEATABLE READ: every statement of it
    reads one snapshot. Set on the driver's connection (its BEGIN names the level), because the
    backend sends its scope before the first statement, where SET TRANSACTION would have to be."""
    wrapper = connections["default"]
    wrapper.ensure_connection()
    raw = wrapper.connection
    previous = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        yield
    finally:
        raw.isolation_level = previous


class Rows:
    """One tenant's rows in `source` and `target` (schemas), table by table."""

    def __init__(
        self,
        *,
        tenant_id: int,
        source: str,
        target: str,
        tables: list[TenantTable],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.tenant_id = tenant_id
        self.source = source
        self.target = target
        self.tables = tables
        self.clock = clock
        self.sleep = sleep

    def copy_paced(self, table: TenantTable) -> int:
        """Copy one table's rows of the tenant in batches of COPY_BATCH in key order, pausing
        after each as long as it took: the other tenants keep half of a core. Every batch
        reads the transaction's one snapshot (one_snapshot), so keys between tables hold."""
        columns = columns_of(table)
        pk = connections["default"].ops.quote_name(table.pk.column)
        listed = ", ".join(columns)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in (pk, '"tenant_id"'))
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        statement = (
            f'INSERT INTO "{self.target}"."{table.db_table}" ({listed}) OVERRIDING SYSTEM VALUE '
            f'SELECT {listed} FROM "{self.source}"."{table.db_table}" WHERE tenant_id = %s '
            f"AND {pk} > %s ORDER BY {pk} LIMIT %s ON CONFLICT (tenant_id, {pk}) {conflict} "
            f"RETURNING {pk}"
        )
        copied, last = 0, -(2**63)
        with connections["default"].cursor() as cursor:
            while True:
                started = self.clock()
                cursor.execute(statement, [self.tenant_id, last, COPY_BATCH])
                ids = [row[0] for row in cursor.fetchall()]
                if not ids:
                    return copied
                copied += len(ids)
                last = max(ids)
                self.sleep(max(0.0, self.clock() - started) * COPY_PAUSE_RATIO)

    def upsert(self, tables: list[TenantTable], *, ids: dict[str, list[int]] | None):
        """Upsert the source rows (all, or those with the given ids per table) into the
        target, in one statement: one snapshot of the source for every table."""
        parts, params, names = [], [], []
        for index, table in enumerate(tables):
            if ids is not None and table.db_table not in ids:
                continue
            columns = columns_of(table)
            pk = connections["default"].ops.quote_name(table.pk.column)
            listed = ", ".join(columns)
            updates = ", ".join(
                f"{c} = EXCLUDED.{c}" for c in columns if c not in (pk, '"tenant_id"')
            )
            conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            where = "tenant_id = %s"
            params.append(self.tenant_id)
            if ids is not None:
                where += f" AND {pk} = ANY(%s)"
                params.append(ids[table.db_table])
            parts.append(
                f'c{index} AS (INSERT INTO "{self.target}"."{table.db_table}" ({listed}) '
                f'OVERRIDING SYSTEM VALUE SELECT {listed} FROM "{self.source}"."{table.db_table}" '
                f"WHERE {where} ON CONFLICT (tenant_id, {pk}) {conflict} RETURNING 1)"
            )
            names.append((index, table.db_table))
        return self.run_ctes(parts, params, names)

    def delete_paced(self, table: TenantTable) -> int:
        """Delete the tenant's rows of one table from the source in batches, pausing as in the
        copy (children first; the keys between tables are checked at the commit anyway)."""
        pk = connections["default"].ops.quote_name(table.pk.column)
        where = f'"{self.source}"."{table.db_table}"'
        statement = (
            f"DELETE FROM {where} WHERE tenant_id = %s AND {pk} IN (SELECT {pk} FROM {where} "
            f"WHERE tenant_id = %s ORDER BY {pk} LIMIT %s)"
        )
        deleted = 0
        with connections["default"].cursor() as cursor:
            while True:
                started = self.clock()
                cursor.execute(statement, [self.tenant_id, self.tenant_id, COPY_BATCH])
                if not cursor.rowcount:
                    return deleted
                deleted += cursor.rowcount
                self.sleep(max(0.0, self.clock() - started) * COPY_PAUSE_RATIO)

    def replay(self, ids: dict[str, list[int]]) -> None:
        """Make the target's rows with these ids what the source's are now: delete them all
        from the target, then insert those the source has. Deleting first lets a row take a
        unique value another replayed row gave up (a workflow deleted and made again under
        its name), which an upsert in place would refuse. Both statements are in the caller's
        transaction; keys between tenant tables are deferred to its commit."""
        known = {t.db_table for t in self.tables}
        unknown = set(ids) - known
        if unknown:
            raise MoveFailed(f"the change log names tables that are not tenant tables: {unknown}")
        tables = [t for t in self.tables if t.db_table in ids]
        parts, params, names = [], [], []
        for index, table in enumerate(tables):
            pk = connections["default"].ops.quote_name(table.pk.column)
            parts.append(
                f'd{index} AS (DELETE FROM "{self.target}"."{table.db_table}" '
                f"WHERE tenant_id = %s AND {pk} = ANY(%s) RETURNING 1)"
            )
            params += [self.tenant_id, ids[table.db_table]]
            names.append((index, table.db_table))
        self.run_ctes(parts, params, names, prefix="d")
        self.upsert(tables, ids=ids)  # one statement: one snapshot of the source

    def delete_all(self, schema: str) -> dict[str, int]:
        parts, params, names = [], [], []
        for index, table in enumerate(self.tables):
            parts.append(
                f'd{index} AS (DELETE FROM "{schema}"."{table.db_table}" '
                "WHERE tenant_id = %s RETURNING 1)"
            )
            params.append(self.tenant_id)
            names.append((index, table.db_table))
        return self.run_ctes(parts, params, names, prefix="d")

    def run_ctes(self, parts, params, names, *, prefix: str = "c") -> dict[str, int]:
        if not parts:
            return {}
        counts = ", ".join(f"(SELECT count(*) FROM {prefix}{index})" for index, _ in names)
        with connections["default"].cursor() as cursor:
            cursor.execute(f"WITH {', '.join(parts)} SELECT {counts}", params)
            row = cursor.fetchone()
        return {table: int(n) for (_, table), n in zip(names, row, strict=True)}

    def digests(self, schema: str, *, checksums: bool = True) -> dict[str, tuple[int, str]]:
        """Per table: (rows, md5 of the rows' text in key order) of the tenant in `schema`."""
        selects, params = [], []
        for table in self.tables:
            pk = connections["default"].ops.quote_name(table.pk.column)
            row = ", ".join(columns_of(table))
            digest = (
                f"md5(coalesce(string_agg(ROW({row})::text, E'\\n' ORDER BY {pk}), ''))"
                if checksums
                else "''"
            )
            selects.append(
                f'(SELECT ARRAY[count(*)::text, {digest}] FROM "{schema}"."{table.db_table}" '
                "WHERE tenant_id = %s)"
            )
            params.append(self.tenant_id)
        with connections["default"].cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(selects)}", params)
            row = cursor.fetchone()
        return {
            t.db_table: (int(value[0]), value[1]) for t, value in zip(self.tables, row, strict=True)
        }
