"""A tenant's limits changed for a benchmark run, then put back (audited both ways)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from limits.services import limits_change
from tenants.models import Tenant


@contextmanager
def limits_for_run(tenant: Tenant, *, values: dict[str, int], why: str) -> Iterator[None]:
    """`values` override the tenant's limits for the block; then they return to its plan's."""
    limits_change(tenant=tenant, set_values=values, reason=f"bench {why}")
    try:
        yield
    finally:
        limits_change(tenant=tenant, unset=list(values), reason=f"bench {why} done")
