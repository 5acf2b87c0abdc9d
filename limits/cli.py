"""`manage.py tenants limits SLUG [--plan NAME] [--set KEY=VALUE ...] [--unset KEY ...]`,
and the request figures of `tenants usage --since` (mixed into the `tenants` command)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from limits import selectors, services
from limits.conf import KEYS, plans
from limits.errors import LimitInputError
from tenants import selectors as tenant_selectors

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
    def add_limits_parsers(self, sub) -> None:
        import argparse

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
        try:
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
        except LimitInputError as exc:
            raise CommandError(str(exc)) from None
        overrides = selectors.overrides_of(tenant_id=tenant.pk)
        data = {"tenant": tenant.slug, **limits.as_dict(), "overrides": sorted(overrides)}
        lines = [f"tenant: {tenant.slug}", f"plan: {limits.plan}"]
        for key in KEYS:
            mark = "  (override)" if key in overrides else ""
            lines.append(f"{key}: {getattr(limits, key)}{mark}")
        self._emit(data, as_json=json, text="\n".join(lines))


def activity(*, tenant_ids: list[int] | None, since: datetime) -> dict[int, dict]:
    """Requests, errors, latency and database time per tenant since `since`."""
    return selectors.usage_totals(tenant_ids=tenant_ids, since=since)
