"""Writing the audit log: who did what to which tenant, in the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from django.db import connections

from tenants.actor import current_actor
from tenants.db.signing import SEPARATOR, signed_fields
from tenants.db.wall import PRIVATE
from tenants.models import AuditEvent, Tenant


def record_event(
    *,
    action: str,
    reason: str = "",
    actor: str = "",
    tenant: Tenant | None = None,
    details: dict[str, Any] | None = None,
    using: str = "default",
) -> AuditEvent:
    """Append one audit row in the current transaction (it commits or rolls back with it).

    The row goes through `ameide_private.record_audit`, the audit log's only door: the fields
    carry the application's signature, and PostgreSQL stamps the time, pid and transaction.
    """
    sql, params, row = audit_call(
        action=action, reason=reason, actor=actor, tenant=tenant, details=details
    )
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT id, at, txid FROM {sql}", params)
        return saved_row(row, cursor.fetchone(), using=using)


def audit_call(
    *,
    action: str,
    reason: str = "",
    actor: str = "",
    tenant: Tenant | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[str, list, AuditEvent]:
    """The signed call of `record_audit` for one event (SQL, parameters) and its unsaved row,
    for record_event() or for a statement that writes the row the event is about as well."""
    who = current_actor()
    row = AuditEvent(
        actor=_text(actor or who.name, 255),
        acting_as=_text(who.acting_as, 255),
        action=_text(action, 64),
        tenant_id_value=tenant.pk if tenant is not None else None,
        tenant_slug=_text(tenant.slug if tenant is not None else "", 63),
        reason=_text(reason, 10_000),
        request_id=_text(who.request_id, 64),
    )
    # JSON without NUL or lone surrogates, which PostgreSQL's jsonb refuses: a refusal must be
    # recorded even when the request that was refused carried such characters.
    encoded = json.dumps(_clean(details or {}), ensure_ascii=True, default=str)
    fields = [
        row.action,
        row.actor,
        row.acting_as,
        row.tenant_id_value,
        row.tenant_slug,
        row.reason,
        row.request_id,
        encoded,
    ]
    row.details = json.loads(encoded)
    sql = f"{PRIVATE}.record_audit(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    return sql, [*fields, signed_fields("audit", *fields)], row


def saved_row(row: AuditEvent, stamped: tuple, *, using: str) -> AuditEvent:
    """`row` as PostgreSQL stored it: the (id, at, txid) that record_audit returned."""
    row.pk, row.at, row.txid = stamped
    row._state.adding = False
    row._state.db = using
    return row


IMPORT_AUDIT_SQL = f"SELECT {PRIVATE}.import_audit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


def imported_event_params(
    *,
    pk: int,
    at: str,
    action: str,
    actor: str,
    acting_as: str,
    tenant: Tenant,
    reason: str,
    request_id: str,
    details: dict[str, Any],
    archive_sha256: str,
) -> list:
    """Parameters of IMPORT_AUDIT_SQL for one event of an archive's history, signed.

    The values must already be clean (clean_text leaves them as they are: the archive was
    verified); PostgreSQL then marks the row as imported and binds it to `tenant`, which it
    accepts only if the import created it in this transaction (tenants.db.wall)."""
    encoded = json.dumps(details, ensure_ascii=True)
    fields = [
        pk, at, action, actor, acting_as, tenant.pk, reason, request_id, encoded, archive_sha256
    ]  # fmt: skip
    return [*fields, signed_fields("import_audit", *fields)]


def is_clean(value: Any) -> bool:
    """Whether PostgreSQL stores `value` (text, or JSON of text) as it is (see clean_text)."""
    return _clean(value) == value


def _text(value: str, limit: int) -> str:
    return clean_text(str(value))[:limit]


def clean_text(value: str) -> str:
    """A field PostgreSQL stores as sent: no NUL, no lone surrogate, no signature separator."""
    value = value.replace("\x00", "\ufffd").replace(SEPARATOR, " ")
    return value.encode("utf-8", "replace").decode("utf-8")


def _clean(value: Any) -> Any:
    """Replace NUL and lone surrogates, recursively, so the row can always be written."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
