"""The SQL that moves one tenant's rows between two placements (tenants move), table by table.

A table's rows go from a source side to a target side (`Leg`); a side is a database (an
alias: `default` or a dedicated database's) and a schema there. Where both sides are in the
same database one statement reads the source and writes the target; across databases the
rows are read on the source's connection as one JSON value per batch and written on the
target's with `jsonb_populate_recordset` (PostgreSQL converts each column from and to text,
so every type goes through unchanged). Each statement runs in the caller's transaction on its
alias and in its side's scope (`Side.scope`): break-glass on `default` (the caller's
`unscoped()`: the only scope that sees a schema and the shared tables at once), the tenant's
own scope in a dedicated database (its rows only; that database has one placement). The steps
and their order are tenants.placement.moving.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from tenants.context import tenant_context
from tenants.exceptions import MoveFailed
from tenants.lifecycle.tables import TenantTable

# The initial copy's batches, and the pause after each (a multiple of the batch's time).
COPY_BATCH = 5000
COPY_PAUSE_RATIO = 1.0


@dataclass(frozen=True)
class Side:
    """Where rows are: a database alias (`default` or `placed_<name>`) and a schema there."""

    alias: str
    schema: str

    @property
    def home(self) -> bool:
        """In the primary database (where the caller's break-glass scope holds)."""
        return self.alias == DEFAULT_DB_ALIAS

    def scope(self, tenant) -> AbstractContextManager:
        """The scope of statements on this side: the caller's (break-glass) on `default`, the
        tenant's own in a dedicated database. The backend sends the scope with a transaction's
        first statement and again whenever it changes, so the two may alternate."""
        return nullcontext() if self.home else tenant_context(tenant)

    def table(self, table: TenantTable) -> str:
        return f'"{self.schema}"."{table.db_table}"'


@dataclass(frozen=True)
class Leg:
    """One table's rows of the tenant, from `source` to `target`."""

    table: TenantTable
    source: Side
    target: Side

    @property
    def local(self) -> bool:
        """Both sides in one database: one statement does the work."""
        return self.source.alias == self.target.alias


def columns_of(table: TenantTable) -> list[str]:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return [quote(f.column) for f in table.model._meta.concrete_fields]


def _pk(table: TenantTable) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(table.pk.column)


def _insert_into(side: Side, table: TenantTable) -> str:
    """The head of an insert into `side` that keeps the rows' ids (the copy, the cross-database
    write and the replay)."""
    return (
        f"INSERT INTO {side.table(table)} ({', '.join(columns_of(table))}) OVERRIDING SYSTEM VALUE"
    )


def _conflict(table: TenantTable) -> str:
    pk = _pk(table)
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}" for c in columns_of(table) if c not in (pk, '"tenant_id"')
    )
    return f"ON CONFLICT (tenant_id, {pk}) " + (
        f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    )


@contextmanager
def one_snapshot(alias: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """The alias's next transaction in REPEATABLE READ: every statement of it reads one
    snapshot. Set on the driver's connection (its BEGIN names the level), because the backend
    sends its scope before the first statement, where SET TRANSACTION would have to be."""
    wrapper = connections[alias]
    wrapper.ensure_connection()
    raw = wrapper.connection
    previous = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        yield
    finally:
        raw.isolation_level = previous


class Rows:
    """One tenant's rows along its legs, table by table."""

    def __init__(
        self,
        *,
        tenant,
        legs: list[Leg],
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.tenant = tenant
        self.tenant_id = tenant.pk
        self.legs = legs
        self.clock = clock
        self.sleep = sleep

    def _execute(self, side: Side, statement: str, params: list) -> list[tuple]:
        with side.scope(self.tenant), connections[side.alias].cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def _rowcount(self, side: Side, statement: str, params: list) -> int:
        with side.scope(self.tenant), connections[side.alias].cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.rowcount

    # --- the initial copy ----------------------------------------------------------------
    def copy_paced(self, leg: Leg) -> int:
        """Copy one table's rows of the tenant in batches of COPY_BATCH in key order, pausing
        after each as long as it took: the other tenants keep half of a core. Every batch
        reads the source transaction's one snapshot (one_snapshot), so keys between tables
        hold; an upsert, so a rerun is harmless."""
        table, pk = leg.table, _pk(leg.table)
        listed = ", ".join(columns_of(table))
        selected = (
            f"SELECT {listed} FROM {leg.source.table(table)} WHERE tenant_id = %s AND {pk} > %s "
            f"ORDER BY {pk} LIMIT %s"
        )
        copied, last = 0, -(2**63)
        while True:
            started = self.clock()
            if leg.local:
                rows = self._execute(
                    leg.target,
                    f"{_insert_into(leg.target, table)} {selected} {_conflict(table)} "
                    f"RETURNING {pk}",
                    [self.tenant_id, last, COPY_BATCH],
                )
                count, top = len(rows), max((r[0] for r in rows), default=None)
            else:
                [(count, top, batch)] = self._execute(
                    leg.source,
                    f"SELECT count(*), max({pk}), coalesce(jsonb_agg(to_jsonb(r) ORDER BY {pk}), "
                    f"'[]')::text FROM ({selected}) r",
                    [self.tenant_id, last, COPY_BATCH],
                )
                if count:
                    self._write(leg, batch)
            if not count:
                return copied
            copied += count
            last = top
            self.sleep(max(0.0, self.clock() - started) * COPY_PAUSE_RATIO)

    def _write(self, leg: Leg, batch: str) -> int:
        """Upsert rows read on the source (a JSON array) into the target."""
        table = leg.table
        listed = ", ".join(columns_of(table))
        return self._rowcount(
            leg.target,
            f"{_insert_into(leg.target, table)} "
            f"SELECT {listed} FROM jsonb_populate_recordset(NULL::{leg.target.table(table)}, "
            f"%s::jsonb) {_conflict(table)}",
            [batch],
        )

    # --- replay --------------------------------------------------------------------------
    def replay(self, ids: dict[str, list[int]]) -> None:
        """Make the target's rows with these ids what the source's are now: delete them all
        from the target, then insert those the source has. Deleting first lets a row take a
        unique value another replayed row gave up (a workflow deleted and made again under
        its name), which an upsert in place would refuse. The source is read in one statement
        (one snapshot of every table); the target is written in the caller's transaction on
        its alias, where keys between tenant tables are deferred to the commit."""
        known = {leg.table.db_table for leg in self.legs}
        unknown = set(ids) - known
        if unknown:
            raise MoveFailed(f"the change log names tables that are not tenant tables: {unknown}")
        legs = [leg for leg in self.legs if leg.table.db_table in ids]
        for target in _sides(legs, "target"):
            mine = [leg for leg in legs if leg.target == target]
            self.run_ctes(
                target,
                [
                    f"DELETE FROM {target.table(leg.table)} WHERE tenant_id = %s "
                    f"AND {_pk(leg.table)} = ANY(%s) RETURNING 1"
                    for leg in mine
                ],
                [p for leg in mine for p in (self.tenant_id, ids[leg.table.db_table])],
                [leg.table.db_table for leg in mine],
            )
        local = [leg for leg in legs if leg.local]
        if local:
            self.run_ctes(
                local[0].target,
                [
                    f"{_insert_into(leg.target, leg.table)} "
                    f"SELECT {', '.join(columns_of(leg.table))} FROM "
                    f"{leg.source.table(leg.table)} WHERE tenant_id = %s AND {_pk(leg.table)} = "
                    f"ANY(%s) {_conflict(leg.table)} RETURNING 1"
                    for leg in local
                ],
                [p for leg in local for p in (self.tenant_id, ids[leg.table.db_table])],
                [leg.table.db_table for leg in local],
            )
        for source in _sides([leg for leg in legs if not leg.local], "source"):
            mine = [leg for leg in legs if not leg.local and leg.source == source]
            selects = [
                f"(SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]')::text FROM (SELECT "
                f"{', '.join(columns_of(leg.table))} FROM {source.table(leg.table)} "
                f"WHERE tenant_id = %s AND {_pk(leg.table)} = ANY(%s)) r)"
                for leg in mine
            ]
            params = [p for leg in mine for p in (self.tenant_id, ids[leg.table.db_table])]
            [batches] = self._execute(source, f"SELECT {', '.join(selects)}", params)
            for leg, batch in zip(mine, batches, strict=True):
                self._write(leg, batch)

    # --- deletion ------------------------------------------------------------------------
    def delete_paced(self, leg: Leg) -> int:
        """Delete the tenant's rows of one table from the source in batches, pausing as in the
        copy (children first; the keys between tables are checked at the commit anyway)."""
        pk, where = _pk(leg.table), leg.source.table(leg.table)
        statement = (
            f"DELETE FROM {where} WHERE tenant_id = %s AND {pk} IN (SELECT {pk} FROM {where} "
            f"WHERE tenant_id = %s ORDER BY {pk} LIMIT %s)"
        )
        deleted = 0
        while True:
            started = self.clock()
            count = self._rowcount(
                leg.source, statement, [self.tenant_id, self.tenant_id, COPY_BATCH]
            )
            if not count:
                return deleted
            deleted += count
            self.sleep(max(0.0, self.clock() - started) * COPY_PAUSE_RATIO)

    def delete_targets(self) -> dict[str, int]:
        """The tenant's rows on every leg's target (a rollback), one statement per database."""
        deleted: dict[str, int] = {}
        for target in _sides(self.legs, "target"):
            mine = [leg for leg in self.legs if leg.target == target]
            with transaction.atomic(using=target.alias):
                deleted.update(
                    self.run_ctes(
                        target,
                        [
                            f"DELETE FROM {target.table(leg.table)} WHERE tenant_id = %s RETURNING 1"
                            for leg in mine
                        ],
                        [self.tenant_id] * len(mine),
                        [leg.table.db_table for leg in mine],
                    )
                )
        return deleted

    def run_ctes(self, side: Side, parts, params, names) -> dict[str, int]:
        """Data-modifying statements on one side as one statement; rows touched per table."""
        if not parts:
            return {}
        ctes = ", ".join(f"c{index} AS ({part})" for index, part in enumerate(parts))
        counts = ", ".join(f"(SELECT count(*) FROM c{index})" for index in range(len(parts)))
        [row] = self._execute(side, f"WITH {ctes} SELECT {counts}", params)
        return {table: int(n) for table, n in zip(names, row, strict=True)}

    # --- verification --------------------------------------------------------------------
    def digests(self, which: str, *, checksums: bool = True) -> dict[str, tuple[int, str, int]]:
        """Per table: (rows, md5 of the rows' text in key order, highest id) of the tenant on
        the legs' `which` side ("source" or "target"). Each database computes its own, with
        the same expression, in one statement (one snapshot of its tables); the caller
        compares them."""
        found: dict[str, tuple[int, str, int]] = {}
        for side in _sides(self.legs, which):
            mine = [leg.table for leg in self.legs if getattr(leg, which) == side]
            selects, params = [], []
            for table in mine:
                pk = _pk(table)
                digest = (
                    f"md5(coalesce(string_agg(ROW({', '.join(columns_of(table))})::text, E'\\n' "
                    f"ORDER BY {pk}), ''))"
                    if checksums
                    else "''"
                )
                selects.append(
                    f"(SELECT ARRAY[count(*)::text, {digest}, coalesce(max({pk}), 0)::text] "
                    f"FROM {side.table(table)} WHERE tenant_id = %s)"
                )
                params.append(self.tenant_id)
            [row] = self._execute(side, f"SELECT {', '.join(selects)}", params)
            for table, value in zip(mine, row, strict=True):
                found[table.db_table] = (int(value[0]), value[1], int(value[2]))
        return found


def _sides(legs: list[Leg], which: str) -> list[Side]:
    """The distinct sources or targets of `legs`, in their order."""
    return list(dict.fromkeys(getattr(leg, which) for leg in legs))


def advance_sequence(*, table: TenantTable, owner: str, past: int) -> int | None:
    """Make the id sequence that serves `table` in the database of `owner` (an owner's alias)
    hand out ids above `past` (never backwards); returns its last value, or None when the id
    has no sequence. A dedicated schema's ids come from the shared table's sequence
    (tenants.placement.schemas), so it is always the home schema's table's sequence."""
    with connections[owner].cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_serial_sequence(%s, %s)",
            [f'public."{table.db_table}"', table.pk.column],
        )
        [(sequence,)] = cursor.fetchall()
        if sequence is None:
            return None
        cursor.execute(
            f"SELECT setval(%s::regclass, GREATEST(%s, last_value)) FROM {sequence}",  # noqa: S608 - the catalog's quoted name
            [sequence, past],
        )
        return int(cursor.fetchone()[0])
