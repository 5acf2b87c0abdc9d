"""PostgreSQL backend that carries the current tenant into every transaction.

Before a statement runs, the transaction must hold `app.tenant_id` equal to the context's
tenant (tenants.context). It is set with `set_config(..., true)`, which PostgreSQL drops at
COMMIT or ROLLBACK, so nothing survives into the next request on a persistent connection, a
pool or PgBouncer in transaction mode. The cost is one statement per transaction (not per
statement): the value last set is remembered until the transaction ends.

A statement issued in autocommit mode while a tenant (or break-glass) is in context is wrapped
in its own transaction, so that on_commit callbacks, streaming responses and commands are
covered too. With no tenant in context, statements run as they are: RLS then shows no rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.db.backends.postgresql import base as postgresql

from tenants.context import database_setting

_SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"
_SET_TENANT_AND_ROLE = "SELECT set_config('app.tenant_id', %s, true), set_config('role', %s, true)"


_TRANSACTION_CONTROL = frozenset({"SAVE", "ROLL", "RELE"})


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

    def _carry_tenant(self, execute, sql, params, many, context):
        if sql[:4] in _TRANSACTION_CONTROL:
            # SAVEPOINT / ROLLBACK TO / RELEASE touch no rows and must run even when the
            # transaction is aborted, where any other statement would fail.
            return execute(sql, params, many, context)
        wanted = database_setting()
        if self.get_autocommit():
            if wanted == ("", False):
                return execute(sql, params, many, context)
            with transaction.atomic(using=self.alias):
                self._apply_tenant(wanted)
                return execute(sql, params, many, context)
        if self._tenant_in_transaction != wanted:
            self._apply_tenant(wanted)
        return execute(sql, params, many, context)

    def _apply_tenant(self, wanted: tuple[str, bool]) -> None:
        tenant_id, breakglass = wanted
        previous = self._tenant_in_transaction
        # A raw cursor of its own: the statement's cursor may be a named (server-side) one.
        with self.connection.cursor() as cursor:
            if breakglass or (previous is not None and previous[1]) or previous is None:
                role = settings.TENANCY_BREAKGLASS_ROLE if breakglass else "none"
                cursor.execute(_SET_TENANT_AND_ROLE, (tenant_id, role))
            else:
                cursor.execute(_SET_TENANT, (tenant_id,))
        self._tenant_in_transaction = wanted
