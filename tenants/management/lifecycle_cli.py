"""The lifecycle subcommands of `manage.py tenants`: arguments and output; the work is in
tenants.lifecycle (kept apart from tenants.py so the command file stays a short index)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from django.core.management.base import CommandError

from tenants import selectors
from tenants.db.signing import tenant_label
from tenants.lifecycle.execution import run_in_tenant
from tenants.lifecycle.exporting import tenant_export
from tenants.lifecycle.importing import AUDIT, tenant_import
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.purge import tenant_purge
from tenants.lifecycle.status import tenant_transition
from tenants.lifecycle.usage import tenant_usage
from tenants.models import Tenant

USAGE_HELP = """\
Rows per tenant table and approximate size, per tenant (all tenants, or SLUG only).

Size: one pass over each tenant table sums pg_column_size(ROW(t.*)) per tenant, the
bytes of each row as PostgreSQL forms it (tuple header and values; a row with out-of-line
TOAST values counts them uncompressed). Indexes, free space and page overhead are not
counted: it estimates the data a tenant holds, comparably between tenants, and no planner
statistics are used. Without SLUG the pass reads every tenant's rows and is audited as
a cross-tenant read.
"""

EXPORT_HELP = """\
Write one tenant's rows (every tenant model, in foreign-key order) to a zip archive:
manifest.json (format version, source tenant, per table: row count and SHA-256 over the
canonical rows sorted by id), one JSON-lines file per table, users.jsonl (the users the
rows refer to, by issuer+subject or username, so another database can map them) and
audit.jsonl (the tenant's audit history, which import brings back marked as imported). The
archive is read from one snapshot; the file appears only when complete and is never
overwritten. Prints the archive's SHA-256 (pass it to `import --sha256`).
"""

IMPORT_HELP = """\
Create a tenant from an archive of `tenants export`. Every count and checksum is verified
before anything is written; then the tenant, all rows and the audit history are inserted in
one transaction, read back and compared with the manifest, and rolled back on any difference.
Ids are kept wherever this database has them free; a taken id is renumbered (the mapping is
printed; --json lists it in full) and keys to it rewritten, or, with --keep-ids, the import
is refused. The tenant keeps its id only where this database never handed it out.
The history comes back marked as imported (its `imported_from` is the archive's SHA-256).
Users missing here are created without a usable password.
"""

RENUMBERED_SHOWN = 20  # per id space in the text output

EXEC_HELP = """\
Run another management command with SLUG as the current tenant, e.g.
`tenants exec acme -- dumpdata workflows`. The tenant must be active. Without `exec`, a
command that touches tenant data fails closed (no tenant is set).
"""


def os_user() -> str:
    """Who runs the command on this machine, for the audit log ("" when it cannot be told)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def tenant_dict(tenant: Tenant) -> dict:
    """A tenant as the subcommands' --json prints it."""
    return {
        "id": tenant.pk,
        "slug": tenant.slug,
        "external_id": tenant.external_id,
        "name": tenant.name,
        "status": tenant.status,
        "placement": tenant.placement,
        "placement_name": tenant.placement_name,
        "created_at": tenant.created_at.isoformat(),
        # How its transactions appear in pg_stat_activity and the slow-query log (%a).
        "statement_label": f"t={tenant_label(tenant.pk)}",
    }


def _tty_progress(stream) -> Progress:
    from tqdm import tqdm

    def bar(iterable, *, total=None, desc=""):
        return tqdm(iterable, total=total, desc=desc, file=stream, leave=False)

    return bar


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class LifecycleSubcommands:
    """Mixed into the `tenants` Command: delete, purge, export, import, usage, exec."""

    def add_lifecycle_parsers(self, sub) -> None:
        raw = argparse.RawDescriptionHelpFormatter
        delete = sub.add_parser(
            "delete",
            help="Soft-delete a tenant: its users get 403, its data stays (`activate` undoes it).",
            description="Soft-delete a tenant (status deleted). Its users get 403 on their "
            "next request; no row is removed. `tenants activate SLUG` undoes it; `tenants "
            "purge SLUG` removes the data for good.",
        )
        delete.add_argument("slug")
        delete.add_argument("--reason", default="", help="Why (kept in the audit log).")
        delete.add_argument("--json", action="store_true", help="Print the tenant as JSON.")

        purge = sub.add_parser(
            "purge",
            help="Irreversibly delete a soft-deleted tenant and all its rows (audited).",
            description="Delete every row of a soft-deleted tenant in every tenant model "
            "(children first) and the tenant itself, in one transaction, leaving an audit "
            "event with per-table counts. Asks you to type the slug, or takes --yes; without "
            "either and without a terminal it refuses.",
        )
        purge.add_argument("slug")
        purge.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        purge.add_argument("--json", action="store_true", help="Print the summary as JSON.")

        export = sub.add_parser(
            "export",
            help="Export one tenant to a verifiable archive.",
            description=EXPORT_HELP,
            formatter_class=raw,
        )
        export.add_argument("slug")
        export.add_argument("--output", "-o", required=True, help="The archive to create (.zip).")
        export.add_argument("--json", action="store_true", help="Print the summary as JSON.")

        restore = sub.add_parser(
            "import",
            help="Create a tenant from an archive (verified, all or nothing).",
            description=IMPORT_HELP,
            formatter_class=raw,
        )
        restore.add_argument("file", help="An archive written by `tenants export`.")
        restore.add_argument("--slug", help="Slug of the new tenant (default: the archive's).")
        restore.add_argument(
            "--external-id",
            help="External id of the new tenant (default: the archive's, or --slug if given).",
        )
        restore.add_argument("--name", help="Display name (default: the archive's).")
        restore.add_argument(
            "--sha256", default="", help="Refuse unless the file has this SHA-256."
        )
        restore.add_argument(
            "--keep-ids",
            action="store_true",
            help="Refuse (write nothing) when an id of the tenant's rows is taken here, "
            "instead of renumbering it.",
        )
        restore.add_argument("--json", action="store_true", help="Print the summary as JSON.")

        usage = sub.add_parser(
            "usage",
            help="Rows per table and approximate size, per tenant.",
            description=USAGE_HELP,
            formatter_class=raw,
        )
        usage.add_argument("slug", nargs="?", help="Only this tenant.")
        usage.add_argument("--json", action="store_true", help="Print JSON.")

        run = sub.add_parser(
            "exec",
            help="Run another management command inside one tenant's context.",
            description=EXEC_HELP,
            formatter_class=raw,
        )
        run.add_argument("slug")
        run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")

    def _progress(self) -> Progress:
        """A bar on stderr when stdout is a terminal; silence for pipes, files and scripts."""
        if not self.stdout.isatty():
            return no_progress
        return _tty_progress(getattr(self.stderr, "_out", sys.stderr))

    def do_delete(self, *, slug, reason="", json=False, **_):
        tenant = selectors.tenant_get(slug=slug)
        tenant = tenant_transition(tenant=tenant, to=Tenant.Status.DELETED, reason=reason)
        self._emit(
            tenant_dict(tenant),
            as_json=json,
            text=f"tenant {slug} is deleted (its data is kept; `tenants activate {slug}` undoes it)",
        )

    def do_purge(self, *, slug, yes=False, json=False, **_):
        tenant = selectors.tenant_get(slug=slug)
        if tenant.status != Tenant.Status.DELETED:
            raise CommandError(
                f"Tenant {slug!r} is {tenant.status}; soft-delete it first (`tenants delete "
                f"{slug}`), then purge."
            )
        if not yes:
            self._confirm(slug)
        summary = tenant_purge(tenant=tenant, progress=self._progress())
        rows = sum(summary.tables.values())
        self._emit(
            summary.as_dict(),
            as_json=json,
            text=f"purged tenant {slug}: {rows} rows in {len(summary.tables)} tables "
            f"(audit event {summary.audit_event_id})",
        )

    def _confirm(self, slug: str) -> None:
        if not sys.stdin.isatty():
            raise CommandError("Refusing to purge: no terminal to confirm on; pass --yes.")
        self.stderr.write(f"This deletes every row of tenant {slug!r} for good.")
        self.stderr.flush()
        answer = input(f"Type the slug ({slug}) to confirm: ")
        if answer.strip() != slug:
            raise CommandError("Confirmation did not match; nothing was purged.")

    def do_export(self, *, slug, output, json=False, **_):
        tenant = selectors.tenant_get(slug=slug)
        summary = tenant_export(tenant=tenant, output=Path(output), progress=self._progress())
        lines = [f"exported tenant {slug} to {summary.file}", f"sha256 {summary.sha256}"]
        lines += [f"  {label:<32} {t['rows']:>9} rows" for label, t in summary.tables.items()]
        lines.append(f"  {'users referenced':<32} {summary.users:>9}")
        lines.append(f"  {'audit events (history)':<32} {summary.audit_events:>9}")
        self._emit(summary.as_dict(), as_json=json, text="\n".join(lines))

    def do_import(
        self,
        *,
        file,
        slug=None,
        external_id=None,
        name=None,
        sha256="",
        keep_ids=False,
        json=False,
        **_,
    ):
        summary = tenant_import(
            path=Path(file),
            slug=slug,
            external_id=external_id,
            name=name,
            expect_sha256=sha256,
            keep_ids=keep_ids,
            progress=self._progress(),
        )
        lines = [f"imported {summary.file} as tenant {summary.tenant} (from {summary.source})"]
        lines += [
            f"  {label:<32} {t['rows']:>9} rows, ids {t['ids']}"
            for label, t in summary.tables.items()
        ]
        lines.append(f"  {'users created':<32} {summary.users_created:>9}")
        lines.append(f"  {'audit events (history)':<32} {summary.audit_events:>9}")
        for label, outcome in summary.ids.items():
            changed = outcome["renumbered"]
            if not changed:
                continue
            if label == AUDIT:  # always all of them, in order: the count says it
                lines.append(f"  {label}: the history's {len(changed)} events got new ids")
                continue
            lines.append(f"  {label}: {len(changed)} id(s) renumbered (archive -> here):")
            shown = list(changed.items())[:RENUMBERED_SHOWN]
            lines += [f"    {old} -> {new}" for old, new in shown]
            if len(changed) > len(shown):
                lines.append(f"    ... {len(changed) - len(shown)} more (--json lists all)")
        self._emit(summary.as_dict(), as_json=json, text="\n".join(lines))

    def do_usage(self, *, slug=None, json=False, **_):
        tenant = selectors.tenant_get(slug=slug) if slug else None
        usage = tenant_usage(tenant=tenant)
        lines = [f"{'tenant':<24} {'status':<10} {'rows':>10} {'size':>10}"]
        for entry in usage:
            lines.append(
                f"{entry.slug:<24} {entry.status:<10} {entry.rows:>10} {_size(entry.bytes):>10}"
            )
            for label, table in entry.tables.items():
                lines.append(f"  {label:<32} {table['rows']:>10} {_size(table['bytes']):>10}")
        self._emit([u.as_dict() for u in usage], as_json=json, text="\n".join(lines))

    def do_exec(self, *, slug, argv, **_):
        if argv and argv[0] == "--":
            argv = argv[1:]
        tenant = selectors.tenant_get(slug=slug)
        # The raw streams: the command wraps them itself (a wrapper around this command's
        # wrappers would end every partial write with a newline).
        run_in_tenant(
            tenant=tenant,
            argv=list(argv),
            stdout=getattr(self.stdout, "_out", self.stdout),
            stderr=getattr(self.stderr, "_out", self.stderr),
        )
