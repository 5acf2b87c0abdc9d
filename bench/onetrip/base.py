"""Prototype (bench only): BEGIN travels in the same message as the tenant setting and the
first statement of a transaction, so an atomic block costs one round trip less.

The core backend already sends `set_config(...)` together with the first statement, but
psycopg opens every transaction with a BEGIN of its own, a round trip that carries nothing.
Here psycopg stays in autocommit mode for good; Django's own flag still says whether a
transaction is wanted, and when one is wanted but not yet open the first statement goes out
as `BEGIN; SELECT set_config(...); <statement>` in one simple-protocol message. COMMIT and
ROLLBACK are unchanged: psycopg sends them whenever libpq reports an open transaction.
Statements that cannot share a message get a plain BEGIN first, as before. Measured by pair
3b; the application does not use it.
"""

from __future__ import annotations

from psycopg import ClientCursor, pq

from tenants.db.backend import base


class DatabaseWrapper(base.DatabaseWrapper):
    def _set_autocommit(self, autocommit: bool) -> None:
        with self.wrap_database_errors:
            self.connection.autocommit = True

    def _needs_begin(self) -> bool:
        idle = self.connection.info.transaction_status == pq.TransactionStatus.IDLE
        return idle and not self.get_autocommit()

    def _carry_tenant(self, execute, sql, params, many, context):
        if not self._needs_begin():
            return super()._carry_tenant(execute, sql, params, many, context)
        raw_cursor = context["cursor"].cursor
        if (
            many
            or not isinstance(sql, str)
            or getattr(raw_cursor, "name", None)
            or not isinstance(raw_cursor, ClientCursor)
        ):
            self.connection.execute("BEGIN")
            return super()._carry_tenant(execute, sql, params, many, context)

        def begin_and_execute(statement, params, many, context):
            result = execute("BEGIN; " + statement, params, many, context)
            raw_cursor.nextset()  # past BEGIN's own (empty) result
            return result

        return super()._carry_tenant(begin_and_execute, sql, params, many, context)

    def _set_now(self, wanted: tuple[str, bool]) -> None:
        if self._needs_begin():
            self.connection.execute("BEGIN")
        super()._set_now(wanted)
