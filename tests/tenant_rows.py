"""Every tenant's rows of a model, read tenant by tenant under each one's own scope: what tests
compare before and after a request to prove it wrote nothing. Not through break-glass
(unscoped), which does not reach a Citus cluster's workers yet (docs/citus.md); every tenant
row names its tenant by a key, so no row is missed."""

from __future__ import annotations

from django.db import models

from tenants.context import tenant_context
from tenants.models import Tenant


def every_tenants_rows(model: type[models.Model], *fields: str) -> list[dict]:
    """model's rows of all tenants as dicts of `fields` (all fields if none), ordered by id."""
    rows: list[dict] = []
    for tenant in Tenant.objects.order_by("id"):
        with tenant_context(tenant):
            rows += model.objects.values(*fields)
    return sorted(rows, key=lambda row: row["id"])
