"""The limits app's subcommands of `manage.py tenants`: `limits SLUG [--plan NAME]
[--set KEY=VALUE ...] [--unset KEY ...]`, and `usage` extended with the request figures
(`--since`) and `--record`. Added to the command through settings.TENANCY_CLI_EXTENSIONS."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from limits import selectors, services
from limits.conf import KEYS, plans
from limits.errors import LimitInputError
from limits.usage import record_measurement
from tenants import selectors as tenant_selectors
from tenants.lifecycle.usage import tenant_usage
from tenants.management.lifecycle_cli import _size

LIMITS_HELP = f"""Show a tenant's limits, or change them (audited).

Limits (integers): {", ".join(KEYS)}.
Plans (settings.TENANCY_PLANS): {{plans}}. A tenant without a plan has the default plan.

  tenants limits acme
  tenants limits acme --plan enterprise
  tenants limits acme --set requests_per_second=50 burst=100 --reason "launch week"
  tenants limits acme --unset requests_per_second
"""

_SINCE = re.compile(r"^(\d+)([mhd])$")


def parse_since(value: str) -> datetime:
    match = _SINCE.match(value.strip())
    if not match:
        raise CommandError(f"--since takes e.g. 30m, 24h or 7d, not {value!r}.")
    amount, unit = int(match.group(1)), match.group(2)
    delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount)}.get(
        unit, timedelta(days=amount)
    )
    return timezone.now() - delta


def _pairs(values: list[str]) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"--set takes KEY=VALUE, not {item!r}.")
        pairs[key.strip()] = value
    return pairs


class LimitsSubcommands:
    """Mixed into the `tenants` Command (before the core's subcommands: its `do_usage` wins)."""

    input_errors = (LimitInputError,)  # shown as one line by the command

    def add_parsers(self, sub) -> None:
        import argparse

        usage = sub.choices["usage"]  # the core's `usage`, with the request figures added
        usage.add_argument(
            "--since", default="24h", help="Requests over this window: 30m, 24h, 7d (24h)."
        )
        usage.add_argument(
            "--record",
            action="store_true",
            help="Also store the measured rows and size (the storage quota reads them).",
        )
        usage.epilog = (
            "Requests, errors (5xx and refusals), average latency and database time come from "
            "the usage tables over --since. --record stores the measured rows and size as "
            "today's figures: the storage quota is checked against the last recorded size."
        )
        limits = sub.add_parser(
            "limits",
            help="Show or change a tenant's plan and limits.",
            description=LIMITS_HELP.replace("{plans}", ", ".join(plans())),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        limits.add_argument("slug")
        limits.add_argument("--plan", help="Switch the tenant to this plan.")
        limits.add_argument(
            "--set",
            nargs="+",
            action="extend",
            default=[],
            metavar="KEY=VALUE",
            help="Override limits.",
        )
        limits.add_argument(
            "--unset",
            nargs="+",
            action="extend",
            default=[],
            metavar="KEY",
            help="Back to the plan's value.",
        )
        limits.add_argument("--reason", default="", help="Why (kept in the audit log).")
        limits.add_argument("--json", action="store_true", help="Print JSON.")

    def do_limits(self, *, slug, plan=None, set=(), unset=(), reason="", json=False, **_):
        tenant = tenant_selectors.tenant_get(slug=slug)
        if plan or set or unset:
            services.limits_change(
                tenant=tenant,
                plan=plan,
                set_values=_pairs(list(set)),
                unset=list(unset),
                reason=reason,
            )
        selectors.forget_cached(tenant_id=tenant.pk)
        limits = selectors.limits_of(tenant_id=tenant.pk)
        overrides = selectors.overrides_of(tenant_id=tenant.pk)
        data = {"tenant": tenant.slug, **limits.as_dict(), "overrides": sorted(overrides)}
        lines = [f"tenant: {tenant.slug}", f"plan: {limits.plan}"]
        for key in KEYS:
            mark = "  (override)" if key in overrides else ""
            lines.append(f"{key}: {getattr(limits, key)}{mark}")
        self._emit(data, as_json=json, text="\n".join(lines))

    def do_usage(self, *, slug=None, since="24h", record=False, json=False, **_):
        start = parse_since(since)
        tenant = tenant_selectors.tenant_get(slug=slug) if slug else None
        usage = tenant_usage(tenant=tenant)
        requests = selectors.usage_totals(tenant_ids=[u.id for u in usage], since=start)
        if record:
            for entry in usage:
                record_measurement(tenant_id=entry.id, rows=entry.rows, storage_bytes=entry.bytes)
        header = f"{'tenant':<24} {'status':<10} {'rows':>10} {'size':>10}"
        lines = [header + f" {'requests':>9} {'errors':>7} {'avg ms':>7} {'db ms':>9}"]
        result = []
        for entry in usage:
            figures = requests.get(entry.id, {})
            lines.append(
                f"{entry.slug:<24} {entry.status:<10} {entry.rows:>10} {_size(entry.bytes):>10}"
                f" {figures.get('requests', 0):>9} {figures.get('errors', 0):>7}"
                f" {figures.get('latency_avg_ms', 0):>7} {figures.get('db_ms', 0):>9}"
            )
            for label, table in entry.tables.items():
                lines.append(f"  {label:<32} {table['rows']:>10} {_size(table['bytes']):>10}")
            result.append({**entry.as_dict(), "since": start.isoformat(), "requests": figures})
        self._emit(result, as_json=json, text="\n".join(lines))
