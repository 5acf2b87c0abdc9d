"""Shared by the admin tests: the marker in every name of tenant B, and a snapshot of all rows."""

from __future__ import annotations

from tenants.context import unscoped

SECRET = "SECRET-B"


def snapshot_all() -> dict:
    """Every tenant row, across tenants (audited read), to prove a request wrote nothing."""
    from accounts.models import Membership, User
    from workflows.models import Workflow, WorkflowRun

    with unscoped(reason="test: snapshot every tenant's rows"):
        return {
            "workflows": list(Workflow.objects.order_by("id").values()),
            "runs": list(WorkflowRun.objects.order_by("id").values()),
            "memberships": list(Membership.objects.order_by("id").values()),
            "users": list(
                User.objects.order_by("id").values("id", "username", "email", "is_active")
            ),
        }
