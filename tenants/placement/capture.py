"""Change capture and the write freeze of a moving tenant: SQL run as the owner.

Logical replication maps tables by their schema-qualified name, so it cannot copy `public.t`
into `tenant_7.t` of the same database; a move captures changes with row triggers instead:

- `ameide_private.placement_change` is the change log: (tenant, table, row id) of every row
  the moving tenant inserted, updated or deleted in its source tables since capture began. Only
  the owner reads or writes it; the trigger function writes it as the owner (SECURITY DEFINER).
- Each source table gets two triggers per moving tenant, with a `WHEN` on that tenant's id, so
  other tenants' writes never call the function (their cost is the `WHEN` test).
- `ameide_private.placement_freeze` holds (tenant, schema) pairs whose writes are refused: the
  trigger raises FROZEN_SQLSTATE (the API answers 503 with Retry-After). Every process sees a
  freeze from its next statement: it is a committed row, read by the trigger.
- In-flight writers: the trigger holds the tenant's advisory lock shared until its transaction
  ends; the mover takes it exclusively while it inserts the freeze row, so it waits for every
  writer that passed the check, and every writer after it sees the row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction

from tenants.db.wall import FREEZE_TABLE, FROZEN_SQLSTATE, LOOKUP_SETTINGS, PRIVATE
from tenants.exceptions import LifecycleError

TRIGGER_PREFIX = "ameide_move_"
# How long one CREATE/DROP TRIGGER may wait for a table's lock: while it waits, every writer
# (CREATE: SHARE ROW EXCLUSIVE) or every reader too (DROP: ACCESS EXCLUSIVE) of that table, of
# every tenant, queues behind it; so it gives up soon, lets them through and tries again.
LOCK_TIMEOUT = "200ms"
LOCK_ATTEMPTS = 150
LOCK_PAUSE_SECONDS = 0.1

OBJECTS_SQL = [
    f"""CREATE TABLE IF NOT EXISTS {PRIVATE}.placement_change (
          seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          tenant_id bigint NOT NULL,
          table_name text NOT NULL,
          row_id bigint NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS placement_change_tenant ON {PRIVATE}.placement_change "
    "(tenant_id, seq)",
    f"""CREATE TABLE IF NOT EXISTS {PRIVATE}.{FREEZE_TABLE} (
          tenant_id bigint NOT NULL,
          schema_name text NOT NULL,
          since timestamptz NOT NULL DEFAULT clock_timestamp(),
          PRIMARY KEY (tenant_id, schema_name))""",
    f"REVOKE ALL ON {PRIVATE}.placement_change, {PRIVATE}.{FREEZE_TABLE} FROM PUBLIC",
    # SECURITY DEFINER as every function of the private schema (`tenants check` holds them to
    # it); it only hashes its argument.
    f"""CREATE OR REPLACE FUNCTION {PRIVATE}.placement_lock_key(t bigint) RETURNS bigint
          LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
          $$ SELECT hashtextextended('ameide.placement:' || t::text, 0) $$""",
    # TG_ARGV: the tenant's id, the table's primary-key column. Runs only for the moving
    # tenant's rows (the triggers' WHEN).
    f"""CREATE OR REPLACE FUNCTION {PRIVATE}.placement_capture() RETURNS trigger
          LANGUAGE plpgsql VOLATILE SECURITY DEFINER {LOOKUP_SETTINGS} AS $$
          DECLARE t bigint := TG_ARGV[0]::bigint;
          BEGIN
            PERFORM pg_advisory_xact_lock_shared({PRIVATE}.placement_lock_key(t));
            IF EXISTS (SELECT 1 FROM {PRIVATE}.{FREEZE_TABLE}
                       WHERE tenant_id = t AND schema_name = TG_TABLE_SCHEMA) THEN
              RAISE EXCEPTION USING ERRCODE = '{FROZEN_SQLSTATE}',
                MESSAGE = 'tenant ' || t || ' is being moved: writes are paused, retry shortly';
            END IF;
            IF TG_OP <> 'INSERT' THEN
              INSERT INTO {PRIVATE}.placement_change (tenant_id, table_name, row_id)
                VALUES (t, TG_TABLE_NAME, (to_jsonb(OLD) ->> TG_ARGV[1])::bigint);
            END IF;
            IF TG_OP <> 'DELETE' THEN
              INSERT INTO {PRIVATE}.placement_change (tenant_id, table_name, row_id)
                VALUES (t, TG_TABLE_NAME, (to_jsonb(NEW) ->> TG_ARGV[1])::bigint);
            END IF;
            RETURN NULL;
          END $$""",
    f"REVOKE ALL ON FUNCTION {PRIVATE}.placement_capture() FROM PUBLIC",
    f"REVOKE ALL ON FUNCTION {PRIVATE}.placement_lock_key(bigint) FROM PUBLIC",
]


def is_frozen_error(exc: BaseException) -> bool:
    """Whether a database error is a moving tenant's paused write (the API's 503)."""
    while exc is not None:
        if getattr(exc, "sqlstate", None) == FROZEN_SQLSTATE:
            return True
        exc = exc.__cause__
    return False


def lock_key_sql(tenant_id: int) -> tuple[str, list]:
    return f"{PRIVATE}.placement_lock_key(%s)", [tenant_id]


def ensure_objects(*, using: str) -> None:
    """The change log, the freeze table and the trigger function (idempotent, as the owner)."""
    with connections[using].cursor() as cursor:
        for statement in OBJECTS_SQL:
            cursor.execute(statement)


def trigger_names(tenant_id: int) -> tuple[str, str]:
    return f"{TRIGGER_PREFIX}{int(tenant_id)}_w", f"{TRIGGER_PREFIX}{int(tenant_id)}_d"


def _with_lock_retries(cursor, statement: str) -> None:
    """Run a DDL statement that needs the table's lock, giving way to the application."""
    for attempt in range(LOCK_ATTEMPTS):
        try:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(statement)
            return
        except Exception as exc:  # noqa: BLE001 - only a lock timeout is retried
            if getattr(getattr(exc, "__cause__", None), "sqlstate", "") != "55P03":
                raise
            if attempt == LOCK_ATTEMPTS - 1:
                raise
            time.sleep(LOCK_PAUSE_SECONDS)
        finally:
            cursor.execute("RESET lock_timeout")


def create_triggers(*, schema: str, table: str, pk: str, tenant_id: int, using: str) -> None:
    """The capture triggers of one tenant on one table (idempotent: CREATE OR REPLACE).

    One table per transaction (the owner's connection is in autocommit): CREATE TRIGGER waits
    for the table's in-flight writers, so every write after it is logged and every write
    before it committed before the initial copy's snapshot."""
    written, deleted = trigger_names(tenant_id)
    target = f'"{schema}"."{table}"'
    call = f"EXECUTE FUNCTION {PRIVATE}.placement_capture('{int(tenant_id)}', '{pk}')"
    with connections[using].cursor() as cursor:
        _with_lock_retries(
            cursor,
            f"CREATE OR REPLACE TRIGGER {written} AFTER INSERT OR UPDATE ON {target} "
            f"FOR EACH ROW WHEN (NEW.tenant_id = {int(tenant_id)}) {call}",
        )
        _with_lock_retries(
            cursor,
            f"CREATE OR REPLACE TRIGGER {deleted} AFTER DELETE ON {target} "
            f"FOR EACH ROW WHEN (OLD.tenant_id = {int(tenant_id)}) {call}",
        )


def drop_triggers(*, schema: str, table: str, tenant_id: int, using: str) -> None:
    with connections[using].cursor() as cursor:
        for name in trigger_names(tenant_id):
            _with_lock_retries(cursor, f'DROP TRIGGER IF EXISTS {name} ON "{schema}"."{table}"')


def freeze(*, tenant_id: int, schema: str, using: str) -> None:
    """Refuse the tenant's writes in `schema` from every process's next statement, after the
    writers that already passed the check have finished (the exclusive advisory lock waits
    for their transactions)."""
    key, params = lock_key_sql(tenant_id)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock({key})", params)
        cursor.execute(
            f"INSERT INTO {PRIVATE}.{FREEZE_TABLE} (tenant_id, schema_name) "
            "VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [tenant_id, schema],
        )


@contextmanager
def mover_lock(*, tenant_id: int, using: str) -> Iterator[None]:
    """One process runs a tenant's move at a time: a session advisory lock on the owner's
    connection (released by PostgreSQL when the process dies, kill -9 included)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT pg_try_advisory_lock({PRIVATE}.placement_lock_key(%s) + 1)", [tenant_id]
        )
        if not cursor.fetchone()[0]:
            raise LifecycleError(
                f"Another process is running the move of tenant {tenant_id} right now."
            )
    try:
        yield
    finally:
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT pg_advisory_unlock({PRIVATE}.placement_lock_key(%s) + 1)", [tenant_id]
            )


def unfreeze(*, tenant_id: int, using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {PRIVATE}.{FREEZE_TABLE} WHERE tenant_id = %s", [tenant_id])


def frozen(*, tenant_id: int, using: str) -> list[str]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT schema_name FROM {PRIVATE}.{FREEZE_TABLE} WHERE tenant_id = %s",
            [tenant_id],
        )
        return [name for (name,) in cursor.fetchall()]


def pending_changes(*, tenant_id: int, using: str) -> dict[str, tuple[list[int], list[int]]]:
    """The logged changes of the tenant: table -> (their log seqs, distinct row ids)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT table_name, array_agg(seq), array_agg(DISTINCT row_id) "
            f"FROM {PRIVATE}.placement_change WHERE tenant_id = %s GROUP BY table_name",
            [tenant_id],
        )
        return {table: (seqs, ids) for table, seqs, ids in cursor.fetchall()}


def forget_changes(*, seqs: list[int], using: str) -> None:
    """Remove replayed entries by their seq (not by range: an entry with a lower seq may
    commit later than one with a higher seq, and must stay until it is replayed)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {PRIVATE}.placement_change WHERE seq = ANY(%s)", [seqs])


def forget_tenant(*, tenant_id: int, using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(f"DELETE FROM {PRIVATE}.placement_change WHERE tenant_id = %s", [tenant_id])


def wait_for_older_transactions(*, using: str, timeout_seconds: float, sleep) -> list[int]:
    """Wait until every transaction open now in this database has ended; returns the pids
    still in one at the timeout ([] when all ended).

    After the switch a transaction that began before it may still write where the tenant used
    to be (its search path was resolved at its start). pg_locks shows every transaction's
    virtual xid to every role (pg_stat_activity's xact_start only to privileged ones), so the
    ones open now are taken from there, as CREATE INDEX CONCURRENTLY waits for them."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT l.virtualxid, l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'virtualxid' AND l.mode = 'ExclusiveLock' AND l.granted "
            "AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
        )
        waiting = dict(cursor.fetchall())
        waited = 0.0
        while waiting:
            cursor.execute(
                "SELECT virtualxid FROM pg_locks WHERE locktype = 'virtualxid' "
                "AND virtualxid = ANY(%s)",
                [list(waiting)],
            )
            still = {vxid for (vxid,) in cursor.fetchall()}
            waiting = {vxid: pid for vxid, pid in waiting.items() if vxid in still}
            if not waiting or waited >= timeout_seconds:
                break
            sleep(0.05)
            waited += 0.05
        return sorted(set(waiting.values()))
