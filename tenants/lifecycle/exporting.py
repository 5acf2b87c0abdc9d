"""Export one tenant's rows, every tenant model in dependency order, and its audit history into
a verifiable archive."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from tenants.audit import record_event
from tenants.context import tenant_context
from tenants.exceptions import LifecycleError, PlacementUnavailable
from tenants.lifecycle.archive import (
    FORMAT,
    MANIFEST,
    USERS_FILE,
    VERSION,
    file_sha256,
    manifest_digest,
    table_file,
)
from tenants.lifecycle.history import AUDIT_FILE, exported_history
from tenants.lifecycle.portable import ExportRefs
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import (
    TableDigest,
    TenantTable,
    canonical_line,
    encode_value,
    tenant_tables,
)
from tenants.models import Tenant
from tenants.placement.router import alias_of

CHUNK_ROWS = 2000


@dataclass(frozen=True)
class ExportSummary:
    tenant: str
    file: str
    sha256: str
    tables: dict[str, dict]  # label -> {"rows": n, "sha256": hex}
    users: int
    audit_events: int

    def as_dict(self) -> dict:
        return asdict(self)


@contextmanager
def repeatable_read(*, using: str = "default") -> Iterator[None]:
    """One transaction whose reads all see the same snapshot, so rows written meanwhile by
    the tenant's users cannot leave the archive with a child whose parent is missing.

    The level has to be chosen before the transaction starts (the backend's first statement
    sets the tenant), so it is set on the driver's connection; inside an enclosing
    transaction (tests) the enclosing one's level applies."""
    connection = connections[using]
    if connection.in_atomic_block:
        with transaction.atomic(using=using):
            yield
        return
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with transaction.atomic(using=using):
            yield
    finally:
        if connection.connection is raw and not raw.closed:
            raw.isolation_level = previous


@contextmanager
def placed_snapshot(tenant: Tenant) -> Iterator[None]:
    """For a tenant in a dedicated database, a `repeatable_read` transaction there too, whose
    snapshot is taken before `default`'s (the caller enters this one first).

    Its rows there name users in `default` (a workflow's owner); users are never deleted, so
    every user a row of the earlier snapshot names is in the later one. A tenant in the shared
    tables or a dedicated schema is read on `default` alone (its schema by the search path
    of its transactions), in the one snapshot of `repeatable_read()`."""
    try:
        alias = alias_of(tenant)
    except PlacementUnavailable as exc:
        raise LifecycleError(f"Cannot export: {exc}") from None
    if alias == DEFAULT_DB_ALIAS:
        yield
        return
    with repeatable_read(using=alias):
        with tenant_context(tenant), connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")  # the snapshot is taken by the first statement
        yield


def tenant_export(
    *, tenant: Tenant, output: Path, progress: Progress = no_progress
) -> ExportSummary:
    """Write `tenant`'s rows to a new archive at `output` (never overwritten) and audit it.

    Any status may be exported: suspend or soft-delete the tenant first for an archive that
    no user can change while it is written. The file appears only once it is complete. The
    rows are read where the tenant's placement keeps them (tenants.placement.router): the
    archive does not depend on the placement, and an import creates the tenant in the shared
    tables."""
    output = Path(output)
    if output.exists():
        raise LifecycleError(f"{output} already exists; choose another --output.")
    if not output.parent.is_dir():
        raise LifecycleError(f"Directory {output.parent} does not exist.")
    tables = tenant_tables()
    problems = [p for table in tables for p in table.unsupported()]
    if problems:
        raise LifecycleError("Cannot export losslessly: " + "; ".join(problems))
    try:
        handle, partial = tempfile.mkstemp(
            prefix=f".{output.name}.", suffix=".partial", dir=output.parent
        )
    except OSError as exc:
        raise LifecycleError(f"Cannot write into {output.parent}: {exc}") from None
    moved = False
    try:
        with placed_snapshot(tenant), repeatable_read():
            with (
                os.fdopen(handle, "wb") as raw,
                zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive,
            ):
                manifest = _write_archive(archive, tenant=tenant, tables=tables, progress=progress)
            sha256 = file_sha256(Path(partial))
            summary = ExportSummary(
                tenant=tenant.slug,
                file=str(output),
                sha256=sha256,
                tables={
                    t["model"]: {"rows": t["rows"], "sha256": t["sha256"]}
                    for t in manifest["tables"]
                },
                users=manifest["users"]["rows"],
                audit_events=manifest["audit"]["rows"],
            )
            record_event(
                action="tenant.export",
                tenant=tenant,
                details={
                    "file": summary.file,
                    "sha256": sha256,
                    "tables": summary.tables,
                    "audit_events": summary.audit_events,
                },
            )
            os.replace(partial, output)
            moved = True
    except BaseException:
        if moved:  # the transaction (and its audit row) did not commit: no archive either
            output.unlink(missing_ok=True)
        raise
    finally:
        Path(partial).unlink(missing_ok=True)
    return summary


def _write_archive(archive: zipfile.ZipFile, *, tenant, tables, progress) -> dict:
    refs = ExportRefs(tenant=tenant)
    entries = []
    with tenant_context(tenant):
        for table in tables:
            for column, model in table.global_keys.items():
                ids = table.model.objects.exclude(**{f"{column}__isnull": True})
                refs.gather(model=model, ids=ids.values_list(column, flat=True).distinct())
        for table in tables:
            entries.append(_write_table(archive, table=table, refs=refs, progress=progress))
    users = TableDigest()
    with archive.open(USERS_FILE, "w", force_zip64=True) as member:
        for profile in refs.user_profiles():
            line = canonical_line(encode_value(profile))
            member.write(line.encode("utf-8") + b"\n")
            users.add(line)
    # The history as of the snapshot: this export's own event is written after it.
    audit = TableDigest()
    with archive.open(AUDIT_FILE, "w", force_zip64=True) as member:
        for row in progress(exported_history(tenant), desc="export audit history"):
            line = canonical_line(row)
            member.write(line.encode("utf-8") + b"\n")
            audit.add(line)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": timezone.now().isoformat(),
        "source": {
            "id": tenant.pk,
            "slug": tenant.slug,
            "external_id": tenant.external_id,
            "name": tenant.name,
            "status": tenant.status,
        },
        "tables": entries,
        "users": {"file": USERS_FILE, "rows": users.rows, "sha256": users.sha256},
        "audit": {"file": AUDIT_FILE, "rows": audit.rows, "sha256": audit.sha256},
    }
    manifest["digest"] = manifest_digest(manifest)
    archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _write_table(archive, *, table: TenantTable, refs: ExportRefs, progress) -> dict:
    digest = TableDigest()
    name = table_file(table.label)
    rows = (
        table.model.objects.order_by(table.pk.attname)
        .values_list(*table.columns)
        .iterator(chunk_size=CHUNK_ROWS)
    )
    total = table.model.objects.count()
    with archive.open(name, "w", force_zip64=True) as member:
        for values in progress(rows, total=total, desc=f"export {table.label}"):
            line = canonical_line(row_to_archive(table, values, refs=refs))
            member.write(line.encode("utf-8") + b"\n")
            digest.add(line)
    return {
        "model": table.label,
        "table": table.db_table,
        "file": name,
        "pk": table.pk.attname,
        "columns": list(table.columns),
        "rows": digest.rows,
        "sha256": digest.sha256,
    }


def row_to_archive(table: TenantTable, values, *, refs) -> dict:
    """A row (values in `table.columns` order) in archive form: portable global references."""
    row = {}
    for column, value in zip(table.columns, values, strict=True):
        model = table.global_keys.get(column)
        row[column] = encode_value(value) if model is None else refs.ref(model=model, pk=value)
    return row
