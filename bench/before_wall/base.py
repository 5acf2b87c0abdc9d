"""Benchmark only: the tenancy backend as it was before the database wall (issue 9, commit
a33bdaf's parent), the baseline of pairs 2w and 3w, which the signed scope must stay within
1.05x of.

It carried the tenant as a plain setting any SQL could set, in front of the statement in one
simple-protocol message (psycopg's client-side binding, Django's default), with the role and
the statement timeout; the policy read that setting. Kept here as it ran, so that its baseline
pays what it paid (this Python wrapper, three `set_config` calls, the parsing of the statement
each time), not a cheaper approximation of it. The setting is renamed to `bench.tenant_id`,
which only the copy of the workflows table that pairs 2w and 3w read has a policy on
(bench.pairs_database), and the tenant comes from today's context.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import transaction
from django.db.backends.postgresql import base as postgresql
from psycopg import ClientCursor

from tenants.context import current_tenant_or_none

SETTING = "bench.tenant_id"

_TRANSACTION_CONTROL = frozenset({"SAVE", "ROLL", "RELE", "BEGI", "COMM"})
_NOTHING = ("", False)
_ROW_STATEMENT = re.compile(
    r"\s*\(*\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH|EXPLAIN|VALUES|TABLE|MERGE|CALL|DO)\b",
    re.IGNORECASE,
)


def _database_setting() -> tuple[str, bool]:
    """(tenant id, break-glass) as the old context gave it; break-glass never runs here."""
    tenant = current_tenant_or_none()
    return (str(tenant.pk), False) if tenant is not None else _NOTHING


def _touches_rows(sql) -> bool:
    return not isinstance(sql, str) or _ROW_STATEMENT.match(sql) is not None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DatabaseWrapper(postgresql.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._tenant_in_transaction: tuple[str, bool] | None = None
        self.execute_wrappers.insert(0, self._carry_tenant)

    def _commit(self):
        self._tenant_in_transaction = None
        return super()._commit()

    def _rollback(self):
        self._tenant_in_transaction = None
        return super()._rollback()

    def _savepoint_rollback(self, sid):
        self._tenant_in_transaction = None
        return super()._savepoint_rollback(sid)

    def _close(self):
        self._tenant_in_transaction = None
        return super()._close()

    def tenant_prefix(self, wanted: tuple[str, bool]) -> str:
        tenant_id, breakglass = wanted
        if tenant_id and not tenant_id.isdigit():
            raise ValueError("tenant ids are integers")
        parts = [f"set_config('{SETTING}', {_literal(tenant_id)}, true)"]
        previous = self._tenant_in_transaction
        if breakglass or previous is None or previous[1]:
            role = settings.TENANCY_BREAKGLASS_ROLE if breakglass else "none"
            parts.append(f"set_config('role', {_literal(role)}, true)")
        if tenant_id and settings.TENANCY_STATEMENT_TIMEOUT_MS:
            timeout = int(settings.TENANCY_STATEMENT_TIMEOUT_MS)
            parts.append(f"set_config('statement_timeout', '{timeout}', true)")
        return "SELECT " + ", ".join(parts)

    def _carry_tenant(self, execute, sql, params, many, context):
        if sql[:4].upper() in _TRANSACTION_CONTROL:
            return execute(sql, params, many, context)
        wanted = _database_setting()
        autocommit = self.get_autocommit()
        if autocommit and wanted == _NOTHING and not _touches_rows(sql):
            return execute(sql, params, many, context)
        if not autocommit and self._tenant_in_transaction == wanted:
            return execute(sql, params, many, context)
        raw_cursor = context["cursor"].cursor
        if (
            many
            or not isinstance(sql, str)
            or getattr(raw_cursor, "name", None)
            or not isinstance(raw_cursor, ClientCursor)
        ):
            return self._carry_separately(execute, sql, params, many, context, wanted)
        result = execute(f"{self.tenant_prefix(wanted)}; {sql}", params, many, context)
        raw_cursor.nextset()
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
