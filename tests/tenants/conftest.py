"""Fixtures of the tenancy tests: a populated pair of tenants for the `tenants` commands."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Membership, User
from tenants.context import tenant_context
from tests.tenants.cli_support import make_member
from workflows.models import Workflow, WorkflowRun


@pytest.fixture
def populated(tenant_a, tenant_b):
    ann = make_member(tenant=tenant_a, username="ann", role="admin")
    olga = User.objects.create_user(
        username="olga", issuer="https://idp.example/realms/alpha", subject="sub-olga"
    )
    with tenant_context(tenant_a):
        Membership.objects.create(user=olga)
        onboard = Workflow.objects.create(
            name="Onboard ✓",
            owner=ann,
            description="ünïcode\nand a second line",
            definition={"steps": ["start", "work"], "weight": 1.5, "nested": {"k": None}},
        )
        nightly = Workflow.objects.create(name="Nightly", owner=olga, status="active")
        Workflow.objects.create(name="Orphan", owner=None)
        WorkflowRun.objects.create(workflow=onboard, input={"n": 1}, started_at=timezone.now())
        WorkflowRun.objects.create(workflow=nightly, output={"ok": True}, status="succeeded")
        WorkflowRun.objects.create(workflow=nightly)
    bob = make_member(tenant=tenant_b, username="bob")
    with tenant_context(tenant_b):
        Workflow.objects.create(name="Bravo only", owner=bob)
    return {"a": tenant_a, "b": tenant_b}
