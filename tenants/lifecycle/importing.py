"""Import a tenant archive: verify it, then create the tenant and its rows in one transaction.

Ids are kept when that is safe, otherwise remapped, one table at a time:

- a table keeps all its archived ids when none of them is in use in this database (by any
  tenant) and all were already handed out by the table's id sequence, so the sequence can
  never hand them out again (the case after a purge in the same database);
- otherwise every row of the table gets a fresh id from the sequence, assigned in the
  archive's id order (so "higher id = newer" still holds), and every foreign key to the table
  is rewritten with the same mapping. Ids inside JSON values are data and are not rewritten.

After the insert, the rows are read back, mapped back to the archive's ids and references, and
their counts and checksums compared with the manifest; any difference rolls everything back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connection, transaction

from tenants import services
from tenants.audit import record_event
from tenants.context import tenant_context, unscoped
from tenants.exceptions import ImportMismatch, LifecycleError
from tenants.lifecycle.archive import VerifiedArchive, VerifiedTable, verify_archive
from tenants.lifecycle.portable import ImportRefs
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import TableDigest, canonical_line, encode_value, tenant_tables
from tenants.models import Tenant

CHUNK_ROWS = 1000
UNMAPPED = "<not from the archive>"


@dataclass(frozen=True)
class ImportSummary:
    tenant: str
    source: str
    file: str
    sha256: str
    tables: dict[str, dict]  # label -> {"rows": n, "sha256": hex, "ids": "kept" | "remapped"}
    users_created: int

    def as_dict(self) -> dict:
        return asdict(self)


def tenant_import(
    *,
    path: Path,
    slug: str | None = None,
    external_id: str | None = None,
    name: str | None = None,
    expect_sha256: str = "",
    progress: Progress = no_progress,
) -> ImportSummary:
    """Create a tenant from an archive; raise (and write nothing) on any mismatch.

    The tenant keeps the archive's slug and external id unless `slug` is given; a new slug
    without `external_id` also becomes the external id. Either must be free: a tenant that
    still exists (even soft-deleted) is never overwritten; a purged one no longer exists.
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
        with transaction.atomic():
            tenant = services.tenant_create(
                slug=slug, name=name or source["name"], external_id=external_id
            )
            refs = ImportRefs(tenant=tenant, profiles=archive.users)
            id_maps = _plan_ids(tables)
            with tenant_context(tenant):
                for verified in tables:
                    _insert(
                        archive,
                        verified,
                        tenant=tenant,
                        id_maps=id_maps,
                        refs=refs,
                        progress=progress,
                    )
                _check_deferred_constraints()
                written = {
                    v.table.label: _verify_written(v, id_maps=id_maps, refs=refs) for v in tables
                }
            summary = ImportSummary(
                tenant=tenant.slug,
                source=source["slug"],
                file=str(archive.path),
                sha256=archive.sha256,
                tables={
                    label: {**counts, "ids": "kept" if id_maps[label] is None else "remapped"}
                    for label, counts in written.items()
                },
                users_created=refs.users_created,
            )
            record_event(
                action="tenant.import",
                tenant=tenant,
                details={
                    "file": summary.file,
                    "sha256": summary.sha256,
                    "source": source,
                    "tables": summary.tables,
                    "users_created": summary.users_created,
                },
            )
    finally:
        archive.close()
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


def _plan_ids(tables: list[VerifiedTable]) -> dict[str, dict[Any, Any] | None]:
    """Per table: None (keep the archived ids) or {archived id: new id}.

    Ids are global to a table, not per tenant, so the collision check has to see every
    tenant's rows: it is the one cross-tenant read of an import, audited as such."""
    plans: dict[str, dict[Any, Any] | None] = {}
    quote = connection.ops.quote_name
    with (
        unscoped(reason="tenants import: find which archived ids are already in use"),
        connection.cursor() as cursor,
    ):
        for verified in tables:
            table = verified.table
            if not verified.ids:
                plans[table.label] = None
                continue
            ids = [
                table.pk.get_db_prep_value(table.pk.to_python(v), connection) for v in verified.ids
            ]
            cursor.execute(
                f"SELECT count(*) FROM {quote(table.db_table)} WHERE {quote(table.pk.column)} = ANY(%s)",
                [ids],
            )
            in_use = cursor.fetchone()[0]
            cursor.execute(
                "SELECT pg_get_serial_sequence(%s, %s)", [table.db_table, table.pk.column]
            )
            sequence = cursor.fetchone()[0]
            if sequence is None:
                if in_use:
                    raise LifecycleError(
                        f"{table.label}: {in_use} archived ids are in use here and the key is "
                        "not generated by a sequence, so they cannot be remapped."
                    )
                plans[table.label] = None
                continue
            cursor.execute("SELECT pg_sequence_last_value(%s::regclass)", [sequence])
            handed_out = cursor.fetchone()[0] or 0
            if not in_use and max(verified.ids) <= handed_out:
                plans[table.label] = None
                continue
            cursor.execute(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                [sequence, len(verified.ids)],
            )
            fresh = sorted(row[0] for row in cursor.fetchall())
            plans[table.label] = dict(zip(verified.ids, fresh, strict=True))
    return plans


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
    pk_map = id_maps[table.label] or {}
    batch: list[tuple] = []
    with archive.rows(verified) as rows, connection.cursor() as cursor:
        rows = progress(rows, total=len(verified.ids), desc=f"import {table.label}")
        for row in rows:
            values: list[Any] = [tenant.pk]
            for field in table.fields:
                value = row[field.attname]
                if field.primary_key:
                    value = pk_map.get(value, value)
                elif field.attname in table.tenant_keys:
                    value = (id_maps[table.tenant_keys[field.attname]] or {}).get(value, value)
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
    reverse = {
        label: {new: old for old, new in plan.items()} if plan else None
        for label, plan in id_maps.items()
    }

    def back(label: str, value: Any) -> Any:
        mapping = reverse.get(label)
        return value if mapping is None or value is None else mapping.get(value, UNMAPPED)

    globals_back = {
        column: refs.reverse(model=model) for column, model in table.global_keys.items()
    }
    digest = TableDigest()
    rows = (
        table.model.objects.order_by(table.pk.attname)
        .values_list(*table.columns)
        .iterator(chunk_size=CHUNK_ROWS)
    )
    for values in rows:
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
        digest.add(canonical_line(row))
    entry = verified.entry
    if digest.rows != entry["rows"] or digest.sha256 != entry["sha256"]:
        raise ImportMismatch(
            f"{table.label}: the database holds {digest.rows} rows with checksum "
            f"{digest.sha256[:12]}…, the archive {entry['rows']} with {entry['sha256'][:12]}…; "
            "rolled back, nothing was imported."
        )
    return {"rows": digest.rows, "sha256": digest.sha256}
