"""Shared by the admin tests: the marker in every name of tenant B, and a snapshot of all rows."""

from __future__ import annotations

from tests.tenant_rows import every_tenants_rows

SECRET = "SECRET-B"


def snapshot_all() -> dict:
    """Every tenant row, across tenants, and every user, to prove a request wrote nothing."""
    from accounts.models import Membership, User
    from workflows.models import Workflow, WorkflowRun

    return {
        "workflows": every_tenants_rows(Workflow),
        "runs": every_tenants_rows(WorkflowRun),
        "memberships": every_tenants_rows(Membership),
        # Users are global rows: all of them in the global scope (no tenant).
        "users": list(User.objects.order_by("id").values("id", "username", "email", "is_active")),
    }
