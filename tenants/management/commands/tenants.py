"""`manage.py tenants <subcommand>`: tenant operations from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils.module_loading import import_string

from tenants import selectors, services
from tenants.actor import acting
from tenants.citus.nodes import tenant_shards
from tenants.citus.verify import citus_findings
from tenants.db.catalog import audit_database, audit_process
from tenants.db.owner import OWNER_ALIAS, owner_alias
from tenants.db.roles import ensure_database, ensure_roles
from tenants.exceptions import TenantInputError, TenantNotFound
from tenants.lifecycle.status import tenant_transition
from tenants.management.citus_cli import CitusSubcommands
from tenants.management.lifecycle_cli import LifecycleSubcommands, os_user, tenant_dict
from tenants.management.placement_cli import PlacementSubcommands
from tenants.models import Placement, Tenant
from tenants.placement import databases as placed_databases
from tenants.placement.move_records import move_findings
from tenants.placement.schemas import schema_findings

logger = logging.getLogger("ameide.command")

# Subcommands other apps add (TENANCY_CLI_EXTENSIONS): the tenancy core knows them only by
# this setting, as it knows the principal resolver and the membership model.
EXTENSIONS = tuple(import_string(path) for path in settings.TENANCY_CLI_EXTENSIONS)
# Bad input of any subcommand: one plain line and exit status 1, never a traceback.
INPUT_ERRORS = (
    TenantInputError,
    TenantNotFound,
    *(error for extension in EXTENSIONS for error in getattr(extension, "input_errors", ())),
)


class Command(
    *EXTENSIONS, LifecycleSubcommands, PlacementSubcommands, CitusSubcommands, BaseCommand
):
    help = "Tenant operations. `manage.py tenants <subcommand> --help` for each."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        create = sub.add_parser("create", help="Create a tenant.")
        create.add_argument("slug", help="Lowercase identifier, e.g. acme.")
        create.add_argument("--name", required=True, help="Display name.")
        create.add_argument(
            "--external-id", help="Value of the IdP tenant claim (default: the slug)."
        )
        create.add_argument(
            "--placement",
            choices=[Placement.SHARED.value, Placement.SCHEMA.value],
            default=Placement.SHARED.value,
            help="Where its rows live: the shared tables (default) or a dedicated schema.",
        )
        create.add_argument("--schema", help="The dedicated schema's name (default: tenant_<id>).")
        create.add_argument("--json", action="store_true", help="Print the tenant as JSON.")
        listing = sub.add_parser("list", help="List tenants.")
        listing.add_argument(
            "--placement", choices=Placement.values, help="Only tenants of this placement."
        )
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        show = sub.add_parser("show", help="Show one tenant.")
        show.add_argument("slug")
        show.add_argument("--json", action="store_true", help="Print JSON.")
        for name, text in (("suspend", "Suspend"), ("activate", "Reactivate")):
            p = sub.add_parser(name, help=f"{text} a tenant (its data stays intact).")
            p.add_argument("slug")
            p.add_argument("--reason", default="", help="Why (kept in the audit log).")
            p.add_argument("--json", action="store_true", help="Print the tenant as JSON.")
        sub.add_parser(
            "setup", help="Create the database (if missing) and the runtime and break-glass roles."
        )
        check = sub.add_parser(
            "check",
            help="Audit the database's RLS, keys, roles and wall (on Citus: placement, "
            "colocation, shards' policies), and what this process can reach; non-zero if unsafe.",
        )
        check.add_argument(
            "--strict", action="store_true", help="Warnings (e.g. trust auth) fail too."
        )
        check.add_argument("--json", action="store_true", help="Print the findings as JSON.")
        self.add_lifecycle_parsers(sub)  # delete, purge, export, import, usage, exec
        self.add_placement_parsers(sub, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_citus_parsers(sub, formatter_class=argparse.RawDescriptionHelpFormatter)
        for extension in EXTENSIONS:  # e.g. users, members, token (accounts.cli)
            extension.add_parsers(self, sub)
        self._subparsers = sub

    def handle(self, *args, subcommand: str, **options) -> None:
        handler = getattr(self, "do_" + subcommand.replace("-", "_"))
        label = " ".join(filter(None, [subcommand, options.get("action")]))  # "users add"
        with acting(name=f"cli:{label} ({os_user()})"):
            # One line per command (at INFO), with its user and command id (tenants.logging).
            logger.info("tenants %s", label, extra={"subcommand": label})
            try:
                handler(**options)
            except INPUT_ERRORS as exc:
                raise CommandError(str(exc)) from None

    def _emit(self, data, *, as_json: bool, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2) if as_json else text)

    def do_create(
        self, *, slug, name, external_id=None, placement="shared", schema=None, json=False, **_
    ):
        tenant = services.tenant_create(
            slug=slug, name=name, external_id=external_id, placement=placement, schema=schema
        )
        where = "" if tenant.placement == "shared" else f" in schema {tenant.placement_name}"
        self._emit(tenant_dict(tenant), as_json=json, text=f"created tenant {tenant.slug}{where}")

    def do_list(self, *, placement=None, json=False, **_):
        listed = list(selectors.tenant_list(placement=placement))
        tenants = [tenant_dict(t) for t in listed]
        # On Citus, each tenant's node: one query on Citus's metadata for all of them.
        shards = tenant_shards(tenant_ids=[t["id"] for t in tenants])
        for t in tenants:
            if t["id"] in shards:
                t["citus"] = shards[t["id"]].as_dict()
        node = (lambda t: f" {_node(t):<28}") if shards else (lambda t: "")
        header = f" {'node':<28}" if shards else ""
        lines = [f"{'slug':<24} {'status':<10} {'placement':<24}{header} name"]
        lines += [
            f"{t['slug']:<24} {t['status']:<10} {selectors.placement_label(m):<24}{node(t)} "
            f"{t['name']}"
            for t, m in zip(tenants, listed, strict=True)
        ]
        self._emit(tenants, as_json=json, text="\n".join(lines) if tenants else "(no tenants)")

    def do_show(self, *, slug, json=False, **_):
        tenant = tenant_dict(selectors.tenant_get(slug=slug))
        shard = tenant_shards(tenant_ids=[tenant["id"]]).get(tenant["id"])
        if shard is not None:
            tenant["citus"] = shard.as_dict()
        text = "\n".join(f"{k}: {v}" for k, v in tenant.items() if k != "citus")
        if shard is not None:
            text += f"\nnode: {_node(tenant)} (Citus shard {shard.shard_id})"
        self._emit(tenant, as_json=json, text=text)

    def _set_status(self, *, slug, reason, status, json=False):
        tenant = selectors.tenant_get(slug=slug)
        tenant = tenant_transition(tenant=tenant, to=status, reason=reason)  # refuses e.g. twice
        self._emit(tenant_dict(tenant), as_json=json, text=f"tenant {slug} is {status}")

    def do_suspend(self, *, slug, reason="", json=False, **_):
        self._set_status(slug=slug, reason=reason, status=Tenant.Status.SUSPENDED, json=json)

    def do_activate(self, *, slug, reason="", json=False, **_):
        self._set_status(slug=slug, reason=reason, status=Tenant.Status.ACTIVE, json=json)

    def do_setup(self, **_):
        with owner_alias() as using:
            done = [*ensure_database(using=using), *ensure_roles(using=using)]
        for name in placed_databases.names():
            done.extend(placed_databases.set_up(name=name))
        for line in done or ["database and roles in place"]:
            self.stdout.write(line)

    def do_check(self, *, strict=False, json=False, **_):
        # The catalog is read on the owner alias where this process has one (tests), else as
        # the runtime role; what the process can reach is checked either way.
        using = OWNER_ALIAS if OWNER_ALIAS in connections else "default"
        citus_failures, citus_warnings = citus_findings(using=using)
        failures = [*audit_database(using=using), *citus_failures]
        failures.extend(schema_findings(using=using))  # dedicated schemas (tenants.placement)
        reach_failures, warnings = audit_process()
        failures.extend(reach_failures)
        placement_failures, placement_warnings = placed_databases.findings(
            using_owner=using == OWNER_ALIAS
        )
        failures.extend(placement_failures)
        warnings.extend(placement_warnings)
        move_failures, move_warnings = move_findings()  # unfinished `tenants move`
        failures.extend(move_failures)
        warnings.extend(move_warnings)
        warnings.extend(citus_warnings)
        unsafe = bool(failures) or (strict and bool(warnings))
        if json:
            data = {"clean": not unsafe, "findings": failures, "warnings": warnings}
            self._emit(data, as_json=True, text="")
        else:
            for finding in failures:
                self.stderr.write(f"FAIL {finding}")
            for warning in warnings:
                self.stderr.write(f"WARN {warning}")
            if not unsafe:
                self.stdout.write("tenancy check: database is clean")
        if unsafe:
            sys.exit(1)


def _node(tenant: dict) -> str:
    """`host:port (own shard)` or `host:port`: where a tenant's rows are on Citus."""
    citus = tenant.get("citus")
    if citus is None:
        return "-"
    return citus["node"] + (" (own shard)" if citus["own_shard"] else "")
