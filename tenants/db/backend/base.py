"""PostgreSQL backend that carries the current tenant into every transaction.

Before a statement runs, its transaction must hold `app.tenant_id` equal to the context's
tenant (tenants.context). It is set with `set_config(..., true)`, which PostgreSQL drops at
COMMIT or ROLLBACK, so nothing survives into the next request on a persistent connection, a
pool or PgBouncer in transaction mode.

It costs no extra round trip: the `set_config` travels in front of the statement, in the same
simple-protocol message (psycopg's client-side binding, Django's default), and the cursor is
moved on to the statement's own result. In autocommit mode PostgreSQL runs such a message as
one implicit transaction, so the setting covers exactly that statement (on_commit callbacks,
streaming responses, commands). Inside a transaction it is sent with the first statement and
again only when the context changes. Named (server-side) cursors and executemany() cannot
carry a prefix; they get a separate statement (and, in autocommit, a transaction of their own).

With no tenant in context, statements that read or write rows carry '' the same way: a
session-level value (misbehaving SQL calling `set_config('app.tenant_id', x, false)`, or another
client of the same PgBouncer server connection) is then never what RLS reads, and a
session-level `SET ROLE` is reset too. Other statements (DDL, SET, SHOW; some, such as CREATE
DATABASE or VACUUM, must run alone) run as they are.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import transaction
from django.db.backends.postgresql import base as postgresql
from psycopg import ClientCursor

from tenants.context import database_setting

_TRANSACTION_CONTROL = frozenset({"SAVE", "ROLL", "RELE", "BEGI", "COMM"})
_NOTHING = ("", False)
# Statements that read or write rows (and may run inside a transaction block).
_ROW_STATEMENT = re.compile(
    r"\s*\(*\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH|EXPLAIN|VALUES|TABLE|MERGE|CALL|DO)\b",
    re.IGNORECASE,
)


def _touches_rows(sql) -> bool:
    return not isinstance(sql, str) or _ROW_STATEMENT.match(sql) is not None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # (tenant id, break-glass) carried by the open transaction; None = nothing set yet.
        self._tenant_in_transaction: tuple[str, bool] | None = None
        self.execute_wrappers.insert(0, self._carry_tenant)

    # The setting ends with the transaction: forget it at the same moments PostgreSQL does.
    def _commit(self):
        self._tenant_in_transaction = None
        return super()._commit()

    def _rollback(self):
        self._tenant_in_transaction = None
        return super()._rollback()

    def _savepoint_rollback(self, sid):
        # A set_config made after the savepoint is undone with it; set it again next time.
        self._tenant_in_transaction = None
        return super()._savepoint_rollback(sid)

    def _close(self):
        self._tenant_in_transaction = None
        return super()._close()

    def tenant_prefix(self, wanted: tuple[str, bool]) -> str:
        """The SELECT that puts `wanted` into the current transaction (literals only)."""
        tenant_id, breakglass = wanted
        if tenant_id and not tenant_id.isdigit():
            raise ValueError("tenant ids are integers")  # never let other text into SQL
        parts = [f"set_config('app.tenant_id', {_literal(tenant_id)}, true)"]
        previous = self._tenant_in_transaction
        if breakglass or previous is None or previous[1]:
            role = settings.TENANCY_BREAKGLASS_ROLE if breakglass else "none"
            parts.append(f"set_config('role', {_literal(role)}, true)")
        if tenant_id and settings.TENANCY_STATEMENT_TIMEOUT_MS:
            # A per-statement ceiling for tenant work: one tenant's runaway query cannot hold
            # a connection (and its locks) that other tenants' requests wait for.
            timeout = int(settings.TENANCY_STATEMENT_TIMEOUT_MS)
            parts.append(f"set_config('statement_timeout', '{timeout}', true)")
        return "SELECT " + ", ".join(parts)

    def _carry_tenant(self, execute, sql, params, many, context):
        if sql[:4].upper() in _TRANSACTION_CONTROL:
            # SAVEPOINT / ROLLBACK TO / RELEASE touch no rows and must run even when the
            # transaction is aborted, where any other statement would fail.
            return execute(sql, params, many, context)
        wanted = database_setting()
        autocommit = self.get_autocommit()
        if autocommit and wanted == _NOTHING and not _touches_rows(sql):
            return execute(sql, params, many, context)
        if not autocommit and self._tenant_in_transaction == wanted:
            return execute(sql, params, many, context)
        raw_cursor = context["cursor"].cursor
        # Only psycopg's client-side cursor sends several statements in one message.
        if (
            many
            or not isinstance(sql, str)
            or getattr(raw_cursor, "name", None)
            or not isinstance(raw_cursor, ClientCursor)
        ):
            return self._carry_separately(execute, sql, params, many, context, wanted)
        result = execute(f"{self.tenant_prefix(wanted)}; {sql}", params, many, context)
        raw_cursor.nextset()  # on to the statement's own result
        if not autocommit:
            self._tenant_in_transaction = wanted
        return result

    def _carry_separately(self, execute, sql, params, many, context, wanted):
        if self.get_autocommit():
            with transaction.atomic(using=self.alias):
                self._set_now(wanted)
                return execute(sql, params, many, context)
        self._set_now(wanted)
        return execute(sql, params, many, context)

    def _set_now(self, wanted: tuple[str, bool]) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(self.tenant_prefix(wanted))
        self._tenant_in_transaction = wanted
