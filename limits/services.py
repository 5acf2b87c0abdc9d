"""Writes: change a tenant's plan and limits (validated, audited)."""

from __future__ import annotations

from django.db import transaction

from limits import selectors
from limits.conf import KEYS, check_plan, default_plan, effective, parse_value
from limits.errors import LimitInputError
from limits.models import TenantLimits
from tenants.audit import record_event
from tenants.context import no_tenant
from tenants.models import Tenant


def limits_change(
    *,
    tenant: Tenant,
    plan: str | None = None,
    set_values: dict[str, object] | None = None,
    unset: list[str] | None = None,
    reason: str = "",
):
    """Set the tenant's plan and/or override limits (`unset` returns keys to the plan's value).

    Returns the effective limits. One audited transaction; nothing changes on bad input.
    """
    parsed = {key: parse_value(key, raw) for key, raw in (set_values or {}).items()}
    for key in unset or []:
        if key not in KEYS:
            raise LimitInputError(f"Unknown limit {key!r}; limits: {', '.join(KEYS)}.")
    if plan is not None:
        check_plan(plan)
    if plan is None and not parsed and not unset:
        raise LimitInputError("Nothing to change: give --plan, --set KEY=VALUE or --unset KEY.")
    with no_tenant(), transaction.atomic():
        row = TenantLimits.objects.select_for_update().filter(tenant_id=tenant.pk).first()
        before_plan = row.plan if row else default_plan()
        before = dict(row.overrides) if row else {}
        overrides = {k: v for k, v in before.items() if k not in (unset or [])} | parsed
        new_plan = plan or before_plan
        if row is None:
            row = TenantLimits(tenant_id=tenant.pk)
        row.plan = new_plan
        row.overrides = overrides
        row.save()
        record_event(
            action="tenant.limits",
            tenant=tenant,
            reason=reason,
            details={
                "plan": [before_plan, new_plan],
                "overrides": [before, overrides],
            },
        )
    selectors.forget_cached(tenant_id=tenant.pk)
    return effective(plan=new_plan, overrides=overrides)
