"""Reads about tenants (global rows: no tenant context needed)."""

from __future__ import annotations

from django.db.models import QuerySet

from tenants.context import current_tenant
from tenants.exceptions import TenantNotFound
from tenants.models import AuditEvent, Placement, Tenant


def tenant_list(*, placement: str | None = None) -> QuerySet[Tenant]:
    tenants = Tenant.objects.order_by("slug")
    return tenants if placement is None else tenants.filter(placement=placement)


def placement_label(tenant: Tenant) -> str:
    """`shared`, or the placement and its name (`schema:tenant_7`)."""
    if tenant.placement == Placement.SHARED:
        return Placement.SHARED.value
    return f"{tenant.placement}:{tenant.placement_name}"


def tenant_get(*, slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        raise TenantNotFound(f"No tenant with slug {slug!r}.")
    return tenant


def audit_events() -> QuerySet[AuditEvent]:
    """The current tenant's audit events (RLS shows no others; the filter states it too)."""
    return AuditEvent.objects.filter(tenant_id_value=current_tenant().pk)
