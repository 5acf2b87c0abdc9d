"""PostgreSQL backend that hands the current scope to PostgreSQL with every transaction.

Before a statement runs, its transaction must carry `app.scope`: a value the application signed
(tenants.db.signing) naming the context's tenant, the global scope (no tenant) or a break-glass
grant, bound to this backend's pid and expiring soon. The RLS policies (tenants.db.wall) accept
nothing else, so SQL that sets the value itself, or replays one it saw, reads no rows.

- Every statement carries it, whatever its first characters: the value is set with
  `set_config(..., true)` (dropped at COMMIT or ROLLBACK, never left on a pooled connection) in the
  same pipeline as the statement, so it costs no extra round trip; in autocommit PostgreSQL runs
  the two as one implicit transaction. Inside a transaction it is sent with the first statement
  and again only when the scope changes or the value nears its expiry.
- Parameters are bound on the server and every statement uses the extended protocol: tenants'
  values and the signed scope never appear in query text (`pg_stat_activity`, logs), and a string
  holding several statements is refused instead of running its later parts outside the scope.
- Only Django's own transaction-control statements (BEGIN, COMMIT, SAVEPOINT, ...) and the few
  that cannot run in a transaction block (CREATE DATABASE, VACUUM, ...) run bare: they touch no
  rows.
"""

from __future__ import annotations

import re
import select
import time

import psycopg
from django.conf import settings
from django.core.signals import setting_changed
from django.db import transaction
from django.db.backends.postgresql import base as postgresql
from django.db.backends.postgresql import features as postgresql_features
from django.utils.functional import cached_property
from psycopg import Cursor, adapt, generators, pq
from psycopg._preparing import Prepare

from tenants.actor import current_actor
from tenants.context import current_tenant_or_none, database_scope
from tenants.db.signing import DatabaseScope, scope_value, tenant_label
from tenants.db.timeouts import requested_timeout, timeout_for
from tenants.db.wall import SCOPE_SETTING
from tenants.placement.kinds import loaded_in_shared_tables
from tenants.placement.paths import (
    FIXED_SEARCH_PATH,
    HOME_SCHEMA,
    TENANT_SEARCH_PATH,
    pinned_schema,
    search_path_of,
)
from tenants.preparation import Tenancy

# Exactly Django's transaction-control statements; anything else carries the scope.
_TRANSACTION_CONTROL = re.compile(
    r'(?:BEGIN|COMMIT|ROLLBACK|(?:SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) "?\w+"?)',
    re.IGNORECASE,
)
# Statements PostgreSQL refuses inside a transaction block; they read no rows, need privileges
# the runtime role lacks, and (one statement per message) cannot carry a second statement.
_MUST_RUN_ALONE = re.compile(
    r"(?:CREATE|DROP)\s+DATABASE\b|VACUUM\b|(?:CREATE|DROP)\s+(?:UNIQUE\s+)?INDEX\s+"
    r"CONCURRENTLY\b|REINDEX\b",
    re.IGNORECASE,
)
# Prepared, a statement keeps its parse but is planned again at each execution: a generic
# plan, made once for every tenant, assumes an average tenant's row count and reads a large
# tenant's rows in the wrong order (seen: 108 ms instead of 3 ms for the 50 newest of a
# 25,000-row tenant; docs/benchmarks.md). So the prefix asks for custom plans for the rest of
# the transaction: PostgreSQL binds (plans) each message after running the ones before it, so
# the statement behind the prefix is planned for its own tenant, while the prefix itself,
# which reads no table, keeps its one generic plan (planning it anew cost 15 µs a statement).
_PREFIX = (
    f"SELECT set_config('{SCOPE_SETTING}', %s, true), set_config('role', %s, true), "
    "set_config('application_name', %s, true), "
    "set_config('plan_cache_mode', 'force_custom_plan', true)"
)
# What a label may hold: identifiers, no quotes, no spaces of the client's choosing.
_UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9._:-]")
_PREFIX_WITH_TIMEOUT = _PREFIX + ", set_config('statement_timeout', %s, true)"


def statement_label() -> str:
    """Who runs the transaction, as PostgreSQL shows it (`application_name`: pg_stat_activity,
    `%a` in log_line_prefix): the tenant's label (`tenants show`; not its slug, which every
    session of the runtime role could read there) and the request or command id, identifiers
    only (the request id is the client's X-Request-ID), within the 63 bytes PostgreSQL keeps.

    A setting of the transaction rather than a comment in the SQL: the statement's text stays
    the same from request to request, so PostgreSQL can keep it prepared.
    """
    tenant = current_tenant_or_none()
    label = tenant_label(tenant.pk) if tenant is not None else "-"
    request = _UNSAFE_LABEL.sub("_", current_actor().request_id)[:32] or "-"
    return f"t={label} r={request}"


class WallCursor(postgresql.CursorMixin, Cursor):
    """Server-side binding and the extended protocol for every statement, parameters or not;
    and, when the backend hands it a scope, BEGIN (if a transaction must start), the scope and
    the statement in one pipeline: one round trip.

    psycopg's own pipeline object costs more than the round trip it saves, so the three are
    sent through libpq's pipeline mode directly (psycopg 3.3's cursor internals: pinned in
    requirements.lock, and the RLS suite fails loudly if they change).
    """

    _wall_scope: tuple[str, tuple[str, ...]] | None = None
    _wall_begin: bytes | None = None

    def carry(self, prefix: tuple[str, tuple[str, ...]]) -> None:
        """Send `prefix` (the backend's scope: its SQL and parameters) with the next statement."""
        self._wall_scope = prefix

    def carry_nothing(self) -> None:
        self._wall_scope = self._wall_begin = None

    def _execute_send(self, query, *, force_extended=False, binary=None):
        # One statement per message: "COMMIT; SELECT ..." is refused by PostgreSQL instead of
        # running its second half in a transaction that no longer carries the scope.
        return super()._execute_send(query, force_extended=True, binary=binary)

    def _start_query(self, query=None):
        conn = self._conn
        if (
            self._wall_scope is None
            or conn._pipeline
            or conn._autocommit
            or conn.pgconn.transaction_status != pq.TransactionStatus.IDLE
        ):
            return (yield from super()._start_query(query))
        # What psycopg's cursor does before a query, except sending BEGIN on its own: it goes
        # into the pipeline below.
        if self.closed:
            raise psycopg.InterfaceError("the cursor is closed")
        self._reset()
        if not self._last_query or (self._last_query is not query):
            self._last_query = None
            self._tx = adapt.Transformer(self)
        self._wall_begin = conn._get_tx_start_command()

    def _maybe_prepare_gen(self, pgq, *, prepare=None, binary=None):
        scope, begin = self._wall_scope, self._wall_begin
        self._wall_scope = self._wall_begin = None
        if scope is None or self._conn._pipeline:
            return (yield from super()._maybe_prepare_gen(pgq, prepare=prepare, binary=binary))
        pgconn = self._pgconn
        prefix = self._prefix_query(scope)
        pgconn.enter_pipeline_mode()
        try:
            if begin is not None:
                pgconn.send_query_params(begin, None)
            # The prefix is the same statement every time, and the statement often is: both
            # go through psycopg's prepared-statement cache (prepare_threshold), so PostgreSQL
            # parses and plans them once per connection instead of once per request.
            sent = [self._send_maybe_prepared(prefix, prepare=None, binary=None)]
            sent.append(self._send_maybe_prepared(pgq, prepare=prepare, binary=binary))
            pgconn.pipeline_sync()
            yield from generators.send(pgconn)
            # One batch of results per query sent (an error aborts the rest, which then
            # answer PIPELINE_ABORTED), then the sync: the same number of batches either way.
            batches = []
            for _ in range((begin is not None) + sum(n for _, _, n in sent)):
                batches.append((yield from generators.fetch_many(pgconn)))
            yield from generators.fetch_many(pgconn)  # PIPELINE_SYNC
        finally:
            pgconn.exit_pipeline_mode()
        results = batches[-1]
        leading_errors = [
            r for batch in batches[:-1] for r in batch if r.status == pq.ExecStatus.FATAL_ERROR
        ]
        prepared = self._conn._prepared
        if leading_errors or any(r.status == pq.ExecStatus.FATAL_ERROR for r in results):
            # A prepare may have been aborted with the pipeline: start the cache afresh.
            prepared.clear()
        else:
            prefix_result = batches[-1 - sent[1][2]]
            for query, (prep, name, _), outcome in zip(
                (prefix, pgq), sent, (prefix_result, results), strict=True
            ):
                key = prepared.maybe_add_to_cache(query, prep, name)
                if key is not None:
                    prepared.validate(key, prep, name, outcome)
        if leading_errors:
            raise psycopg.errors.error_from_result(leading_errors[0], encoding=self._encoding)
        self._check_results(results)
        self._set_results(results)

    def _prefix_query(self, prefix: tuple[str, tuple[str, ...]]):
        """`prefix` converted for the server (its parameters dumped). The backend hands the same
        tuple to each statement of one context (DatabaseWrapper.scope_prefix), so the converted
        query is kept on the connection for as long as it does: a tuple is never changed, and
        the one kept here cannot be freed and its identity reused."""
        kept = getattr(self._conn, "_wall_prefix", None)
        if kept is not None and kept[0] is prefix:
            return kept[1]
        converted = self._convert_query(*prefix)
        self._conn._wall_prefix = (prefix, converted)
        return converted

    def _send_maybe_prepared(self, pgq, *, prepare, binary) -> tuple[Prepare, bytes, int]:
        """Send `pgq` into the open libpq pipeline, prepared when psycopg's cache says so;
        (its preparation state, its name, the result batches it will answer with)."""
        prep, name = self._get_prepared(pgq, prepare)
        if prep is Prepare.NO:
            self._execute_send(pgq, binary=binary)
            return prep, name, 1
        batches = 1
        if prep is Prepare.SHOULD:
            self._pgconn.send_prepare(name, pgq.query, param_types=pgq.types)
            batches += 1
        self._send_query_prepared(name, pgq, binary=binary)
        return prep, name, batches


class DatabaseFeatures(postgresql_features.DatabaseFeatures):
    @cached_property
    def supports_foreign_keys(self) -> bool:
        # A dedicated database (tenants.placement) holds placed tenant tables only: their
        # single-column keys point at global rows in `default` (the tenant, a workflow's
        # owner), which PostgreSQL cannot follow into another database, so migrate creates
        # none there; the application keeps them whole. Keys between tenant tables are
        # composite constraints of their own (CompositeForeignKey) and are created.
        return not self.connection.settings_dict.get("PLACEMENT")

    def allows_group_by_selected_pks_on_model(self, model):
        # GROUP BY id alone lets PostgreSQL read a row's other columns only where id is the
        # table's primary key; a tenant table's is (tenant_id, id) (TenantPrimaryKey).
        if getattr(model, "tenancy", None) == Tenancy.TENANT:
            return False
        return super().allows_group_by_selected_pks_on_model(model)


class DatabaseWrapper(postgresql.DatabaseWrapper):
    features_class = DatabaseFeatures

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The scope the open transaction carries and until when its value is good.
        self._carried: DatabaseScope | None = None
        self._carried_until = 0.0
        self._signed: dict[tuple[DatabaseScope, int], tuple[str, float]] = {}
        # The last prefix made, what it was made of and until when it holds (scope_prefix).
        self._prefix_memo: tuple[tuple, float, tuple[str, tuple[str, ...]]] | None = None
        self.execute_wrappers.insert(0, self._carry_scope)

    def get_connection_params(self):
        params = super().get_connection_params()
        params["cursor_factory"] = WallCursor
        if params.get("prepare_threshold") is None and settings.TENANCY_PREPARED_STATEMENTS:
            # Prepared statements live in one server session: never behind a transaction-mode
            # pooler, where the next transaction may run on another backend.
            params["prepare_threshold"] = 5
        return params

    # The setting ends with the transaction: forget it at the same moments PostgreSQL does.
    def _commit(self):
        self._carried = None
        return super()._commit()

    def _rollback(self):
        self._carried = None
        return super()._rollback()

    def _savepoint_rollback(self, sid):
        # A set_config made after the savepoint is undone with it; set it again next time.
        self._carried = None
        return super()._savepoint_rollback(sid)

    def _close(self):
        self._carried = None
        self._signed.clear()
        self._prefix_memo = None
        return super()._close()

    def init_connection_state(self):
        super().init_connection_state()
        self._global_pid = None
        self._prefix_memo = None  # a new server process: its pid is in the signed value
        if settings.TENANCY_CITUS and settings.TENANCY_SCOPE_BIND_BACKEND:
            # On a Citus coordinator the scope binds to the backend's global pid, which the
            # workers serving this backend report too (tenants.db.wall.scope_id).
            with self.connection.cursor() as cursor:
                # A database without Citus (Django's maintenance database) binds to the pid.
                cursor.execute("SELECT to_regproc('pg_catalog.citus_backend_gpid') IS NOT NULL")
                if cursor.fetchone()[0]:
                    cursor.execute("SELECT citus_backend_gpid()")
                    self._global_pid = cursor.fetchone()[0]

    def is_usable(self) -> bool:
        """Whether a persistent connection can serve the next request, mostly without a round
        trip (CONN_HEALTH_CHECKS calls this before a request's first query).

        Django asks the server (`SELECT 1`) every time. A server that ended the session (restart,
        `pg_terminate_backend`, an idle timeout) has sent an error and closed the socket, so the
        socket is readable; a healthy idle session has sent nothing. So: only when something is
        waiting is the server asked. A peer gone without a word (no FIN) is not caught, but
        `SELECT 1` would wait for the TCP timeout there as well.
        """
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            waiting, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        # Something arrived unasked: an error and EOF, or a harmless notice. Ask to tell which.
        return super().is_usable() if waiting else True

    def backend_pid(self) -> int:
        """The pid the scope binds to: 0 behind a transaction-mode pooler (another backend
        may run the next transaction), the global pid on a Citus coordinator, else this
        connection's server process."""
        if not settings.TENANCY_SCOPE_BIND_BACKEND:
            return 0
        if getattr(self, "_global_pid", None):
            return self._global_pid
        return self.connection.info.backend_pid

    def scope_prefix(self, scope: DatabaseScope) -> tuple[str, tuple[str, ...]]:
        """The statement that puts `scope` into the current transaction, with its parameters.

        The statements of one context (a request's after its first, a job's loop) send the same
        prefix: it is kept, with what it was made of, and made again when any of that changes
        (the scope, the tenant and its loaded placement, the request, its timeout, a setting,
        the connection) or its signed value nears its expiry. Making it cost an autocommit read
        of a page about 3 % (docs/benchmarks.md, stop 27).
        """
        tenant = current_tenant_or_none()
        made_of = (
            scope,
            tenant.pk if tenant is not None else None,
            loaded_in_shared_tables(tenant) if tenant is not None else None,
            current_actor().request_id,
            requested_timeout(),
            _settings_generation,
        )
        memo = self._prefix_memo
        if memo is not None and memo[0] == made_of and time.time() < memo[1]:
            self._carried_until = memo[1]
            return memo[2]
        prefix, params = self._make_prefix(scope)
        made = (prefix, tuple(params))
        self._prefix_memo = (made_of, self._carried_until, made)
        return made

    def _make_prefix(self, scope: DatabaseScope) -> tuple[str, list[str]]:
        pid = self.backend_pid()
        ttl = settings.TENANCY_SCOPE_TTL_SECONDS
        now = time.time()
        cached = self._signed.get((scope, pid))
        if cached is None or cached[1] - now < ttl / 2:
            if len(self._signed) > 256:
                self._signed.clear()
            cached = self._signed[(scope, pid)] = scope_value(
                scope, backend_pid=pid, ttl_seconds=ttl, now=now
            )
        value, expires = cached
        self._carried_until = expires - ttl / 2
        # On Citus break-glass stays in the runtime role (tenants.constraints.RowSecurity).
        glass = scope.kind == "b" and not settings.TENANCY_CITUS
        role = settings.TENANCY_BREAKGLASS_ROLE if glass else "none"
        label = statement_label()
        if scope.kind == "t":
            # A per-statement ceiling for tenant work: one tenant's runaway query cannot hold
            # a connection (and its locks) that other tenants' requests wait for. Per tenant
            # when its request set one (limits), else the platform's.
            default = settings.TENANCY_STATEMENT_TIMEOUT_MS
            timeout = timeout_for(tenant_id=scope.ident, default=default)
            if timeout:
                return self._routed(
                    scope, _PREFIX_WITH_TIMEOUT, [value, role, label, str(int(timeout))]
                )
        return self._routed(scope, _PREFIX, [value, role, label])

    def _routed(self, scope: DatabaseScope, prefix: str, params: list[str]):
        """The prefix with the transaction's search path (tenants.placement.paths): the home
        schema for a tenant whose row, as this process loaded it, says the shared tables (as
        a dedicated database is chosen, tenants.placement.router), and for the global scope;
        any other tenant's placement read in the database, after its scope; a pinned
        connection's schema when it migrates one; the home schema in a dedicated database.
        Not on Citus (no dedicated schemas there yet, docs/placement.md)."""
        if settings.TENANCY_CITUS:
            return prefix, params
        if self.settings_dict.get("PLACEMENT"):
            # A dedicated database (tenants.placement.databases) has no tenant directory and
            # no dedicated schemas: its tables are in the home schema.
            return f"{prefix}, {FIXED_SEARCH_PATH}", [*params, HOME_SCHEMA]
        pinned = pinned_schema(self.settings_dict)
        if pinned is not None:
            return f"{prefix}, {FIXED_SEARCH_PATH}", [*params, search_path_of(pinned)]
        if scope.kind == "t" and not _in_shared_tables(scope):
            return f"{prefix}, {TENANT_SEARCH_PATH}", params
        return f"{prefix}, {FIXED_SEARCH_PATH}", [*params, HOME_SCHEMA]

    def _carry_scope(self, execute, sql, params, many, context):
        if isinstance(sql, str) and (
            _TRANSACTION_CONTROL.fullmatch(sql.strip()) or _MUST_RUN_ALONE.match(sql)
        ):
            # No rows touched, and must run even when the transaction is aborted (or outside
            # any transaction block).
            return execute(sql, params, many, context)
        scope = database_scope()
        # The connection is open (a cursor runs this): Django's get_autocommit() would check.
        autocommit = self.autocommit
        if not autocommit and self._carried == scope and time.time() < self._carried_until:
            return execute(sql, params, many, context)
        prefix = self.scope_prefix(scope)
        raw_cursor = context["cursor"].cursor
        if (
            many
            or settings.TENANCY_CITUS
            or not isinstance(raw_cursor, WallCursor)
            or getattr(raw_cursor, "name", None)
        ):
            # On Citus the scope also goes out as SET LOCAL (see _set_now), which must run in a
            # transaction block to reach the workers.
            # executemany() and named cursors cannot share a pipeline with the prefix.
            return self._carry_separately(execute, sql, params, many, context, *prefix)
        raw_cursor.carry(prefix)
        try:
            result = execute(sql, params, many, context)
        finally:
            raw_cursor.carry_nothing()  # whatever happened, never into a later statement
        if not autocommit:
            self._carried = scope
        return result

    def _carry_separately(self, execute, sql, params, many, context, prefix, prefix_params):
        if self.get_autocommit() and settings.TENANCY_CITUS:
            # psycopg's own transaction block: this runs for Django's maintenance connection
            # too (creating the test database), which is no alias atomic() could name.
            try:
                with self.wrap_database_errors, self.connection.transaction():
                    self._set_now(prefix, prefix_params)
                    return execute(sql, params, many, context)
            finally:
                # That transaction is over (Django's _commit never saw it): the next
                # transaction must send its scope again.
                self._carried = None
        if self.get_autocommit():
            with transaction.atomic(using=self.alias):
                self._set_now(prefix, prefix_params)
                return execute(sql, params, many, context)
        self._set_now(prefix, prefix_params)
        return execute(sql, params, many, context)

    def _set_now(self, prefix: str, prefix_params: list[str]) -> None:
        with self.wrap_database_errors:
            self.connection.execute(prefix, prefix_params)
            if settings.TENANCY_CITUS:
                self.connection.execute(_set_local(prefix_params[0]))
        self._carried = database_scope()


# Bumped when a TENANCY_* setting changes (tests): every connection's kept prefix is made again.
_settings_generation = 0


def _settings_changed(*, setting: str, **_kwargs) -> None:
    global _settings_generation
    if setting.startswith("TENANCY_"):
        _settings_generation += 1


def connect_signals() -> None:
    setting_changed.connect(_settings_changed, dispatch_uid="tenants.db.backend.settings")


def _in_shared_tables(scope: DatabaseScope) -> bool:
    """Whether the scope's tenant is, by the row this process loaded, in the shared tables.

    Routing it here spares every one of its statements the lookup in the database (about 27 µs
    of the server's time, docs/benchmarks.md). A row loaded before the tenant moved to a schema
    routes to the shared tables, where the move keeps its rows frozen (writes refused) for
    TENANCY_MOVE_STALE_SECONDS after the switch (tenants.placement.moving.routed_by_process);
    the path decides no row's visibility, which the policies check on every row."""
    tenant = current_tenant_or_none()
    return tenant is not None and tenant.pk == scope.ident and loaded_in_shared_tables(tenant)


# What a signed value is made of (tenants.db.signing.scope_value): nothing that needs quoting.
_SIGNED_VALUE = re.compile(r"[a-z]:[0-9]{1,18}:[0-9]{1,18}:[0-9]{1,12}:[0-9a-f]{64}")


def _set_local(value: str) -> bytes:
    """SET LOCAL of the signed scope: Citus passes SET LOCAL (not set_config) on to the workers
    its transaction touches (citus.propagate_set_commands = 'local'). A utility statement takes
    no parameters, so the value is in the text; it is checked to be a signed value's shape."""
    if not _SIGNED_VALUE.fullmatch(value):
        raise ValueError("not a signed scope value")
    return f"SET LOCAL {SCOPE_SETTING} = '{value}'".encode()
