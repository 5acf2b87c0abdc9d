"""Import a tenant archive: verify it, then create the tenant, its rows and its audit history
in one transaction.

Ids are kept wherever this database has them free, per row, and the others renumbered with the
mapping reported (tenants.lifecycle.ids has the rules): the tenant's rows, the tenant itself,
the users the import creates and the audit events it restores. Foreign keys to renumbered rows
are rewritten; ids inside JSON values are data and are not.

The audit history comes back as imported events (tenants.lifecycle.history), and the import
itself is recorded as a new event, `tenant.import`, with the archive's SHA-256 and the ids
that changed.

After the insert, the rows and the history are read back, mapped back to the archive's ids and
references, and their counts and checksums compared with the manifest; any difference rolls
everything back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from tenants import services
from tenants.audit import record_event
from tenants.context import no_tenant, tenant_context
from tenants.exceptions import ArchiveInvalid, ImportMismatch, LifecycleError
from tenants.lifecycle.archive import VerifiedArchive, VerifiedTable, verify_archive
from tenants.lifecycle.history import restore_history, restored_digest
from tenants.lifecycle.ids import (
    IdPlan,
    IdSpace,
    in_archive_order,
    plan,
    refuse_taken,
    reserve,
)
from tenants.lifecycle.portable import ImportRefs, existing_user, user_ref_of
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import TableDigest, canonical_line, encode_value, tenant_tables
from tenants.models import AuditEvent, Tenant

CHUNK_ROWS = 1000
UNMAPPED = "<not from the archive>"
TENANT = "tenants.tenant"
USERS = "accounts.user"  # the label of the users' id space, whatever the user model
AUDIT = "tenants.auditevent"
# One import at a time (a session-level advisory lock): a second import must see the first's
# kept ids as taken, and they are invisible to it until the first commits.
IMPORT_LOCK = 0x616D_6569_6465  # "ameide"


@dataclass(frozen=True)
class ImportSummary:
    tenant: str
    source: str
    file: str
    sha256: str
    tables: dict[str, dict]  # label -> {"rows": n, "sha256": hex, "ids": "kept" | "renumbered"}
    users_created: int
    audit_events: int  # history restored from the archive
    # Per id space (tenant tables, tenant, users, audit events): {"kept": n, "renumbered":
    # {archived id: new id}}; users list every archived user whose id here differs.
    ids: dict[str, dict]

    def as_dict(self) -> dict:
        return asdict(self)


def tenant_import(
    *,
    path: Path,
    slug: str | None = None,
    external_id: str | None = None,
    name: str | None = None,
    expect_sha256: str = "",
    keep_ids: bool = False,
    progress: Progress = no_progress,
) -> ImportSummary:
    """Create a tenant from an archive; raise (and write nothing) on any mismatch.

    The tenant keeps the archive's slug and external id unless `slug` is given; a new slug
    without `external_id` also becomes the external id. Either must be free: a tenant that
    still exists (even soft-deleted) is never overwritten; a purged one no longer exists.
    `keep_ids`: refuse, rather than renumber, when an id of the tenant's rows is taken here.
    A refused import writes no row; the id sequences may have moved past the archive's ids
    (a gap, as a rolled-back insert leaves).
    """
    archive = verify_archive(path=path, expect_sha256=expect_sha256, progress=progress)
    try:
        source = archive.manifest["source"]
        slug = slug or source["slug"]
        if external_id is None:
            external_id = source["external_id"] if slug == source["slug"] else slug
        _refuse_taken(slug=slug, external_id=external_id)
        order = {table.label: index for index, table in enumerate(tenant_tables())}
        tables = sorted(archive.tables, key=lambda v: order[v.table.label])
        spaces = _id_spaces(archive, tables)
        with _one_import_at_a_time():
            if keep_ids:
                refuse_taken(spaces)
            watermarks = reserve(spaces)
            with transaction.atomic():
                ids = plan(spaces, watermarks, keep_ids=keep_ids)
                summary = _create(
                    archive, tables, ids=ids, slug=slug, external_id=external_id,
                    name=name or source["name"], progress=progress,
                )  # fmt: skip
    finally:
        archive.close()
    return summary


def _create(archive, tables, *, ids, slug, external_id, name, progress) -> ImportSummary:
    source = archive.manifest["source"]
    tenant_id = ids[TENANT].new(source["id"]) if TENANT in ids else None
    tenant = services.tenant_create(slug=slug, name=name, external_id=external_id, pk=tenant_id)
    users = ids.get(USERS, IdPlan())
    refs = ImportRefs(tenant=tenant, profiles=archive.users, user_ids=users.new)
    with tenant_context(tenant):
        for verified in tables:
            _insert(archive, verified, tenant=tenant, id_maps=ids, refs=refs, progress=progress)
        _check_deferred_constraints()
        written = {v.table.label: _verify_written(v, id_maps=ids, refs=refs) for v in tables}
    history = ids.get(AUDIT, IdPlan())
    with archive.history() as rows:
        restore_history(
            rows,
            tenant=tenant,
            new_id=history.new,
            archive_sha256=archive.sha256,
            total=len(archive.audit_ids),
            progress=progress,
        )
    _verify_history(archive, tenant=tenant, plan=history)
    reported = {label: p.as_dict() for label, p in ids.items() if label != USERS}
    if archive.version >= 2:
        user_ids = refs.user_ids()
        changed = {old: new for old, new in user_ids.items() if old != new}
        reported[USERS] = IdPlan(kept=len(user_ids) - len(changed), renumbered=changed).as_dict()
    summary = ImportSummary(
        tenant=tenant.slug,
        source=source["slug"],
        file=str(archive.path),
        sha256=archive.sha256,
        tables={
            label: {**counts, "ids": "renumbered" if ids[label].renumbered else "kept"}
            for label, counts in written.items()
        },
        users_created=refs.users_created,
        audit_events=len(archive.audit_ids),
        ids=reported,
    )
    record_event(
        action="tenant.import",
        tenant=tenant,
        details={
            "file": summary.file,
            "sha256": summary.sha256,
            "source": source,
            "format_version": archive.version,
            "tables": summary.tables,
            "users_created": summary.users_created,
            "audit_events": summary.audit_events,
            # The history's events are all renumbered, in order: their count says it all.
            "ids": {
                label: {**outcome, "renumbered": len(outcome["renumbered"])}
                if label == AUDIT
                else outcome
                for label, outcome in summary.ids.items()
            },
        },
    )
    return summary


def _refuse_taken(*, slug: str, external_id: str) -> None:
    if Tenant.objects.filter(slug=slug).exists():
        raise LifecycleError(
            f"A tenant with slug {slug!r} exists; import under another --slug (or purge it)."
        )
    if Tenant.objects.filter(external_id=external_id).exists():
        raise LifecycleError(
            f"A tenant with external id {external_id!r} exists; pass another --external-id."
        )


def _id_spaces(archive: VerifiedArchive, tables: list[VerifiedTable]) -> list[IdSpace]:
    """What the import creates: the tenant, the users missing here (by their archived ids;
    an archive of version 1 carries none), the tenant's rows and its history."""
    source_id = archive.manifest["source"]["id"]
    if not isinstance(source_id, int) or isinstance(source_id, bool):
        raise ArchiveInvalid(f"The archive's tenant id {source_id!r} is not an integer.")
    with no_tenant():  # accounts are found in the global scope
        missing = sorted(
            p["id"] for p in archive.users if "id" in p and existing_user(user_ref_of(p)) is None
        )
    return [
        IdSpace(label=TENANT, model=Tenant, ids=[source_id], never_reused=True),
        IdSpace(label=USERS, model=get_user_model(), ids=missing),
        *(
            IdSpace(label=v.table.label, model=v.table.model, ids=v.ids, tenant_rows=True)
            for v in tables
        ),
        IdSpace(label=AUDIT, model=AuditEvent, ids=archive.audit_ids, always_new=True),
    ]


@contextmanager
def _one_import_at_a_time() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [IMPORT_LOCK])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK])


def _insert(
    archive: VerifiedArchive, verified: VerifiedTable, *, tenant, id_maps, refs, progress: Progress
) -> None:
    table = verified.table
    quote = connection.ops.quote_name
    tenant_column = table.model._meta.get_field("tenant").column
    columns = [tenant_column, *(f.column for f in table.fields)]
    sql = (
        f"INSERT INTO {quote(table.db_table)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    pk_map = id_maps[table.label]
    batch: list[tuple] = []
    with archive.rows(verified) as rows, connection.cursor() as cursor:
        rows = progress(rows, total=len(verified.ids), desc=f"import {table.label}")
        for row in rows:
            values: list[Any] = [tenant.pk]
            for field in table.fields:
                value = row[field.attname]
                if field.primary_key:
                    value = pk_map.new(value)
                elif field.attname in table.tenant_keys:
                    value = id_maps[table.tenant_keys[field.attname]].new(value)
                elif field.attname in table.global_keys:
                    value = refs.resolve(model=table.global_keys[field.attname], ref=value)
                values.append(field.get_db_prep_save(field.to_python(value), connection))
            batch.append(tuple(values))
            if len(batch) >= CHUNK_ROWS:
                cursor.executemany(sql, batch)
                batch.clear()
        if batch:
            cursor.executemany(sql, batch)


def _check_deferred_constraints() -> None:
    """Check the deferred composite keys now, inside the transaction, not at COMMIT."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    except DatabaseError as exc:
        raise ImportMismatch(f"The imported rows break a key: {exc}") from None


def _verify_written(verified: VerifiedTable, *, id_maps, refs) -> dict:
    """Read the table back in the tenant, in archive form, and compare it with the manifest."""
    table = verified.table
    reverse = {label: plan.reverse() for label, plan in id_maps.items()}

    def back(label: str, value: Any) -> Any:
        return None if value is None else reverse[label].get(value, value)

    globals_back = {
        column: refs.reverse(model=model) for column, model in table.global_keys.items()
    }

    def archived(values) -> tuple[Any, str]:
        row = {}
        for column, value in zip(table.columns, values, strict=True):
            if column == table.pk.attname:
                row[column] = encode_value(back(table.label, value))
            elif column in table.tenant_keys:
                row[column] = encode_value(back(table.tenant_keys[column], value))
            elif column in globals_back:
                row[column] = None if value is None else globals_back[column].get(value, UNMAPPED)
            else:
                row[column] = encode_value(value)
        return row[table.pk.attname], canonical_line(row)

    digest = TableDigest()
    rows = table.model.objects.values_list(*table.columns)
    for _, line in in_archive_order(
        rows, plan=id_maps[table.label], pk=table.pk.attname, convert=archived
    ):
        digest.add(line)
    entry = verified.entry
    if digest.rows != entry["rows"] or digest.sha256 != entry["sha256"]:
        raise ImportMismatch(
            f"{table.label}: the database holds {digest.rows} rows with checksum "
            f"{digest.sha256[:12]}…, the archive {entry['rows']} with {entry['sha256'][:12]}…; "
            "rolled back, nothing was imported."
        )
    return {"rows": digest.rows, "sha256": digest.sha256}


def _verify_history(archive: VerifiedArchive, *, tenant: Tenant, plan: IdPlan) -> None:
    """Read the restored history back in archive form and compare it with the manifest."""
    if "audit" not in archive.manifest:
        return
    digest = restored_digest(tenant=tenant, plan=plan, archive_sha256=archive.sha256)
    entry = archive.manifest["audit"]
    if (digest.rows, digest.sha256) != (entry["rows"], entry["sha256"]):
        raise ImportMismatch(
            f"audit history: the database holds {digest.rows} events with checksum "
            f"{digest.sha256[:12]}…, the archive {entry['rows']} with {entry['sha256'][:12]}…; "
            "rolled back, nothing was imported."
        )
