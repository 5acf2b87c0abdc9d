"""A tenant's audit history in an archive: written by export, restored by import.

The archive's `audit.jsonl` holds the tenant's AuditEvent rows (those whose tenant is the
exported one, as its admins read them), one canonical line each, ascending id, with their
original time, action, actor, reason, request and details. The tenant itself is not in the
row: an import binds every row to the tenant it creates, whatever the file says.

Restored rows go through `ameide_private.import_audit` (tenants.db.wall), the only door the
runtime role has for them: PostgreSQL marks each with the archive's SHA-256 (`imported_from`),
takes the new tenant's slug and refuses a tenant the import did not create in the same
transaction. So an archive, however crafted, can add history to the tenant it creates and to
nothing else, and that history never passes for events recorded in this database. The row's
transaction and backend are those of the import (the source's mean nothing here).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import DatabaseError, connection

from tenants.audit import IMPORT_AUDIT_SQL, imported_event_params, is_clean
from tenants.context import tenant_context
from tenants.exceptions import ArchiveInvalid
from tenants.lifecycle.ids import IdPlan, in_archive_order
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import TableDigest, canonical_line, encode_value
from tenants.models import AuditEvent, Tenant

AUDIT_FILE = "audit.jsonl"
AUDIT_COLUMNS = ("id", "at", "action", "actor", "acting_as", "reason", "request_id", "details")
# Text columns and their length limits in the audit table (None: unlimited).
TEXT_LIMITS = {"action": 64, "actor": 255, "acting_as": 255, "reason": None, "request_id": 64}
_FIELDS = {"id": "pk", "at": "at", "details": "details", **{k: k for k in TEXT_LIMITS}}
CHUNK_ROWS = 1000


def exported_history(tenant: Tenant) -> Iterator[dict]:
    """The tenant's audit rows in archive form, ascending id (read in the tenant's scope, the
    rows its admins read through /api/audit)."""
    with tenant_context(tenant):
        rows = (
            AuditEvent.objects.filter(tenant_id_value=tenant.pk)
            .order_by("pk")
            .values_list(*(_FIELDS[c] for c in AUDIT_COLUMNS))
            .iterator(chunk_size=CHUNK_ROWS)
        )
        for values in rows:
            yield {c: encode_value(v) for c, v in zip(AUDIT_COLUMNS, values, strict=True)}


def row_problem(row: Any) -> str | None:
    """Why a line of audit.jsonl cannot be restored as it is, or None."""
    if not isinstance(row, dict) or set(row) != set(AUDIT_COLUMNS):
        return "not an audit row"
    if not isinstance(row["id"], int) or isinstance(row["id"], bool) or row["id"] < 1:
        return "its id is not a positive integer"
    try:
        at = dt.datetime.fromisoformat(row["at"]) if isinstance(row["at"], str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or encode_value(at) != row["at"]:
        return "its time is not a UTC timestamp in canonical form"
    for column, limit in TEXT_LIMITS.items():
        value = row[column]
        if not isinstance(value, str) or (limit is not None and len(value) > limit):
            return f"{column} is not text of at most {limit} characters"
    if not row["action"]:
        return "it has no action"
    if not isinstance(row["details"], dict):
        return "its details are not an object"
    if not is_clean({c: row[c] for c in (*TEXT_LIMITS, "details")}):
        return "it holds characters the audit log does not store (NUL, U+001F)"
    return None


def restore_history(
    rows: Iterable[dict],
    *,
    tenant: Tenant,
    new_id: Callable[[int], int],
    archive_sha256: str,
    total: int,
    progress: Progress = no_progress,
) -> None:
    """Insert the archive's audit rows as imported events of `tenant` (created by the import
    in the current transaction), each with the id `new_id` gives it."""
    try:
        _restore(rows, tenant=tenant, new_id=new_id, archive_sha256=archive_sha256, total=total,
                 progress=progress)  # fmt: skip
    except DatabaseError as exc:
        # The database's own checks (tenants.db.wall.import_audit): a future date, a bad
        # value. The transaction is rolled back by the caller.
        raise ArchiveInvalid(f"audit history refused by the database: {exc}") from None


def _restore(rows, *, tenant, new_id, archive_sha256, total, progress) -> None:
    batch: list[list] = []
    with connection.cursor() as cursor:
        for row in progress(rows, total=total, desc="import audit history"):
            batch.append(
                imported_event_params(
                    pk=new_id(row["id"]),
                    at=row["at"],
                    action=row["action"],
                    actor=row["actor"],
                    acting_as=row["acting_as"],
                    tenant=tenant,
                    reason=row["reason"],
                    request_id=row["request_id"],
                    details=row["details"],
                    archive_sha256=archive_sha256,
                )
            )
            if len(batch) >= CHUNK_ROWS:
                cursor.executemany(IMPORT_AUDIT_SQL, batch)
                batch.clear()
        if batch:
            cursor.executemany(IMPORT_AUDIT_SQL, batch)


def restored_digest(*, tenant: Tenant, plan: IdPlan, archive_sha256: str) -> TableDigest:
    """The imported events of `tenant` read back in archive form (their ids mapped back to
    the archive's, in its order), to compare with the manifest."""
    reverse = plan.reverse()

    def archived(values) -> tuple[int, str]:
        row = {c: encode_value(v) for c, v in zip(AUDIT_COLUMNS, values, strict=True)}
        row["id"] = reverse.get(row["id"], row["id"])
        return row["id"], canonical_line(row)

    digest = TableDigest()
    with tenant_context(tenant):
        rows = AuditEvent.objects.filter(
            tenant_id_value=tenant.pk, imported_from=archive_sha256
        ).values_list(*(_FIELDS[c] for c in AUDIT_COLUMNS))
        for _, line in in_archive_order(rows, plan=plan, pk="pk", convert=archived):
            digest.add(line)
    return digest
