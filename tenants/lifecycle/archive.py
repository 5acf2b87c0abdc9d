"""The tenant archive format, and its verification before anything is written to the database.

An archive is a zip file:

    manifest.json                      format, version, source tenant, tables, digest
    tables/<app_label>.<model>.jsonl   one canonical JSON line per row, ascending primary key
    users.jsonl                        profiles of the users the rows refer to
    audit.jsonl                        the tenant's audit history (version 2)

`manifest.json` holds `format` ("ameide.tenant-archive"), `version`, `created_at`, `source`
(id, slug, external_id, name, status of the exported tenant), `tables` (in dependency order:
model, db table, file, primary key, columns, rows, sha256), `users` (file, rows, sha256),
from version 2 `audit` (file, rows, sha256), and `digest`, the SHA-256 of the canonical form
of everything else in the manifest, so an edited manifest is detected too. The checksums
detect corruption and edits; they are not a signature: compare the archive's own SHA-256
(printed by `export`) out of band, or pass it to `import --sha256`, to detect a forger who
recomputes them.

Versions: 2 (written now) adds each user's id in the source to users.jsonl (so an import can
keep it) and audit.jsonl. Version 1 archives are still read: their users get ids of this
database and they bring no history.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model

from tenants.exceptions import ArchiveInvalid
from tenants.lifecycle.history import AUDIT_FILE, row_problem
from tenants.lifecycle.portable import USER_PROFILE_KEYS, USER_PROFILE_KEYS_V1, user_ref_of
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import TableDigest, TenantTable, canonical_line, tenant_tables

FORMAT = "ameide.tenant-archive"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
USERS_FILE = "users.jsonl"


def table_file(label: str) -> str:
    return f"tables/{label}.jsonl"


def manifest_digest(manifest: dict) -> str:
    body = {key: value for key, value in manifest.items() if key != "digest"}
    return hashlib.sha256(canonical_line(body).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@contextmanager
def member_lines(archive: zipfile.ZipFile, name: str) -> Iterator[Iterator[str]]:
    """The member's lines without their newline; the member is closed however the reader ends."""
    with archive.open(name) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield (line[:-1] if line.endswith("\n") else line for line in text)


@dataclass
class VerifiedTable:
    table: TenantTable
    entry: dict
    ids: list[Any] = field(default_factory=list)  # the archive's primary keys, ascending


@dataclass
class VerifiedArchive:
    """An archive whose every checksum, count and reference has been checked."""

    path: Path
    zip: zipfile.ZipFile
    manifest: dict
    sha256: str
    tables: list[VerifiedTable]
    users: list[dict]
    audit_ids: list[int] = field(default_factory=list)  # the history's ids, ascending

    @property
    def version(self) -> int:
        return self.manifest["version"]

    @contextmanager
    def rows(self, verified: VerifiedTable) -> Iterator[Iterator[dict]]:
        with member_lines(self.zip, verified.entry["file"]) as lines:
            yield (json.loads(line) for line in lines)

    @contextmanager
    def history(self) -> Iterator[Iterator[dict]]:
        """The audit rows (none in a version 1 archive)."""
        if "audit" not in self.manifest:
            yield iter(())
            return
        with member_lines(self.zip, self.manifest["audit"]["file"]) as lines:
            yield (json.loads(line) for line in lines)

    def close(self) -> None:
        self.zip.close()


def verify_archive(
    *, path: Path, expect_sha256: str = "", progress: Progress = no_progress
) -> VerifiedArchive:
    """Check the whole archive against its manifest and this database's models; raise
    ArchiveInvalid on the first problem. Reads the database's schema only, never its rows."""
    path = Path(path)
    if not path.is_file():
        raise ArchiveInvalid(f"No archive at {path}.")
    sha256 = file_sha256(path)
    if expect_sha256 and sha256 != expect_sha256.lower():
        raise ArchiveInvalid(f"{path} has SHA-256 {sha256}, not the expected {expect_sha256}.")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveInvalid(f"{path} is not a tenant archive: {exc}") from None
    try:
        manifest = _read_manifest(archive)
        tables = _verify_tables(archive, manifest, progress)
        users = _verify_users(archive, manifest)
        _verify_references(archive, tables, users)
        audit_ids = _verify_audit(archive, manifest) if manifest["version"] >= 2 else []
    except ArchiveInvalid:
        archive.close()
        raise
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        archive.close()
        raise ArchiveInvalid(f"{path} is malformed: {exc!r}") from None
    return VerifiedArchive(
        path=path,
        zip=archive,
        manifest=manifest,
        sha256=sha256,
        tables=tables,
        users=users,
        audit_ids=audit_ids,
    )


def _read_manifest(archive: zipfile.ZipFile) -> dict:
    if MANIFEST not in archive.namelist():
        raise ArchiveInvalid("The archive has no manifest.json.")
    manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveInvalid("manifest.json is not the manifest of a tenant archive.")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise ArchiveInvalid(
            f"Archive format version {manifest.get('version')!r} is not one of "
            f"{', '.join(map(str, READABLE_VERSIONS))}."
        )
    if manifest.get("digest") != manifest_digest(manifest):
        raise ArchiveInvalid("manifest.json was changed: its digest does not match its content.")
    return manifest


def _verify_tables(archive, manifest: dict, progress: Progress) -> list[VerifiedTable]:
    known = {table.label: table for table in tenant_tables()}
    names = set(archive.namelist())
    verified: list[VerifiedTable] = []
    for entry in manifest["tables"]:
        label = entry["model"]
        table = known.get(label)
        if table is None:
            raise ArchiveInvalid(f"The archive holds {label}, which is not a tenant model here.")
        if label in {v.table.label for v in verified}:
            raise ArchiveInvalid(f"The manifest lists {label} twice.")
        if sorted(entry["columns"]) != sorted(table.columns) or entry["pk"] != table.pk.attname:
            raise ArchiveInvalid(
                f"{label}: the archive's columns {sorted(entry['columns'])} differ from this "
                f"database's {sorted(table.columns)} (a different schema version)."
            )
        if entry["file"] != table_file(label) or entry["file"] not in names:
            raise ArchiveInvalid(f"{label}: file {entry['file']!r} is missing from the archive.")
        verified.append(_verify_table(archive, table, entry, progress))
    return verified


def _verify_table(archive, table: TenantTable, entry: dict, progress: Progress) -> VerifiedTable:
    verified = VerifiedTable(table=table, entry=entry)
    digest = TableDigest()
    columns = set(table.columns)
    pk = table.pk.attname
    with member_lines(archive, entry["file"]) as lines:
        for number, line in enumerate(
            progress(lines, total=entry["rows"], desc=f"verify {table.label}"), 1
        ):
            row = json.loads(line)
            if not isinstance(row, dict) or set(row) != columns:
                raise ArchiveInvalid(f"{table.label} line {number}: not a row of this table.")
            if canonical_line(row) != line:
                raise ArchiveInvalid(f"{table.label} line {number}: not in canonical form.")
            if verified.ids and not row[pk] > verified.ids[-1]:
                raise ArchiveInvalid(
                    f"{table.label} line {number}: primary keys are not ascending."
                )
            verified.ids.append(row[pk])
            digest.add(line)
    if digest.rows != entry["rows"]:
        raise ArchiveInvalid(
            f"{table.label}: {digest.rows} rows in the file, {entry['rows']} in the manifest."
        )
    if digest.sha256 != entry["sha256"]:
        raise ArchiveInvalid(f"{table.label}: checksum mismatch (the rows were changed).")
    return verified


def _verify_users(archive, manifest: dict) -> list[dict]:
    entry = manifest["users"]
    if entry["file"] != USERS_FILE or USERS_FILE not in archive.namelist():
        raise ArchiveInvalid("users.jsonl is missing from the archive.")
    digest = TableDigest()
    profiles: list[dict] = []
    keys = sorted(USER_PROFILE_KEYS if manifest["version"] >= 2 else USER_PROFILE_KEYS_V1)
    with member_lines(archive, USERS_FILE) as lines:
        for line in lines:
            profile = json.loads(line)
            if not isinstance(profile, dict) or sorted(profile) != keys:
                raise ArchiveInvalid(f"users.jsonl: malformed profile {line[:80]!r}.")
            user_id = profile.get("id", 1)
            if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1:
                raise ArchiveInvalid(f"users.jsonl: malformed user id in {line[:80]!r}.")
            if canonical_line(profile) != line:
                raise ArchiveInvalid("users.jsonl: a line is not in canonical form.")
            profiles.append(profile)
            digest.add(line)
    if (digest.rows, digest.sha256) != (entry["rows"], entry["sha256"]):
        raise ArchiveInvalid("users.jsonl: count or checksum mismatch (the users were changed).")
    ids = [p["id"] for p in profiles if "id" in p]
    if len(set(ids)) != len(ids):
        raise ArchiveInvalid("users.jsonl: two profiles carry the same user id.")
    return profiles


def _verify_audit(archive, manifest: dict) -> list[int]:
    """audit.jsonl: canonical, ascending ids, every row restorable as it is, count and checksum."""
    entry = manifest["audit"]
    if entry["file"] != AUDIT_FILE or AUDIT_FILE not in archive.namelist():
        raise ArchiveInvalid("audit.jsonl is missing from the archive.")
    digest = TableDigest()
    ids: list[int] = []
    with member_lines(archive, AUDIT_FILE) as lines:
        for number, line in enumerate(lines, 1):
            row = json.loads(line)
            problem = row_problem(row)
            if problem:
                raise ArchiveInvalid(f"audit.jsonl line {number}: {problem}.")
            if canonical_line(row) != line:
                raise ArchiveInvalid(f"audit.jsonl line {number}: not in canonical form.")
            if ids and not row["id"] > ids[-1]:
                raise ArchiveInvalid(f"audit.jsonl line {number}: ids are not ascending.")
            ids.append(row["id"])
            digest.add(line)
    if (digest.rows, digest.sha256) != (entry["rows"], entry["sha256"]):
        raise ArchiveInvalid("audit.jsonl: count or checksum mismatch (the history was changed).")
    return ids


def _verify_references(archive, tables: list[VerifiedTable], users: list[dict]) -> None:
    """Every key inside the archive points at a row of the archive (or a listed user)."""
    ids = {v.table.label: set(v.ids) for v in tables}
    user_refs = {canonical_line(user_ref_of(p)) for p in users}
    user_model = get_user_model()
    wanted: dict[str, set] = defaultdict(set)
    for verified in tables:
        keys = verified.table.tenant_keys
        user_columns = [c for c, m in verified.table.global_keys.items() if m is user_model]
        if not keys and not user_columns:
            continue
        with member_lines(archive, verified.entry["file"]) as lines:
            for line in lines:
                row = json.loads(line)
                for column, target in keys.items():
                    if row[column] is not None:
                        wanted[target].add(row[column])
                for column in user_columns:
                    if row[column] is not None and canonical_line(row[column]) not in user_refs:
                        raise ArchiveInvalid(
                            f"{verified.table.label}: user {row[column]!r} is not in users.jsonl."
                        )
    for target, values in wanted.items():
        dangling = values - ids.get(target, set())
        if dangling:
            raise ArchiveInvalid(
                f"Rows refer to {len(dangling)} {target} row(s) missing from the archive, "
                f"e.g. id {sorted(dangling, key=str)[0]!r}."
            )
