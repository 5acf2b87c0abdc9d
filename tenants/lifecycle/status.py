"""Which status changes a tenant may make, checked under a row lock before they are written."""

from __future__ import annotations

from django.db import transaction

from tenants import services
from tenants.exceptions import LifecycleError
from tenants.models import Tenant

Status = Tenant.Status

# to -> the statuses it may be reached from. A deleted tenant is reactivated, never suspended:
# `activate` is the one way back, so an operator cannot half-restore it by accident.
ALLOWED_FROM = {
    Status.SUSPENDED: {Status.ACTIVE},
    Status.DELETED: {Status.ACTIVE, Status.SUSPENDED},
    Status.ACTIVE: {Status.SUSPENDED, Status.DELETED},
}


def tenant_transition(*, tenant: Tenant, to: str, reason: str = "") -> Tenant:
    """Move `tenant` to status `to` with an audit row, or raise LifecycleError and write nothing."""
    if to not in ALLOWED_FROM:
        raise LifecycleError(f"Unknown status {to!r}.")
    with transaction.atomic():
        # The lock serialises concurrent lifecycle commands on the same tenant.
        locked = Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        if locked is None:
            raise LifecycleError(f"Tenant {tenant.slug!r} no longer exists.")
        if locked.status not in ALLOWED_FROM[to]:
            raise LifecycleError(
                f"Tenant {locked.slug!r} is {locked.status}; it cannot become {to} "
                f"(allowed from: {', '.join(sorted(ALLOWED_FROM[to]))})."
            )
        services.tenant_set_status(tenant=locked, status=to, reason=reason)
    tenant.status = locked.status
    return locked
