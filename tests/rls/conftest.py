"""Fixtures of the row-level security tests: two tenants with workflows and runs, and a second
database alias."""

from __future__ import annotations

import copy

import pytest
from django.db import connections

from tenants.context import tenant_context
from tests.rls.support import SECOND_ALIAS

# A second alias over the same test database and runtime role, as a replica or a router would
# add. A TEST mirror of `default`, so no database is created for it; only tests that list it
# in `databases` may use it. Registered at import, before the test databases are set up.
connections.settings.setdefault(
    SECOND_ALIAS,
    {
        **copy.deepcopy(connections.settings["default"]),
        "ATOMIC_REQUESTS": False,
        "TEST": {"MIRROR": "default"},
    },
)


@pytest.fixture
def two_tenants(tenant_a, tenant_b):
    """Workflows in A and B (one name in both) and a run of each; returns the objects."""
    from workflows.models import Workflow, WorkflowRun

    with tenant_context(tenant_a):
        a1 = Workflow.objects.create(name="alpha one")
        a2 = Workflow.objects.create(name="shared name")
        run_a = WorkflowRun.objects.create(workflow=a1)
    with tenant_context(tenant_b):
        b1 = Workflow.objects.create(name="bravo one")
        b2 = Workflow.objects.create(name="shared name")
        run_b = WorkflowRun.objects.create(workflow=b1)
    return {
        "a": tenant_a,
        "b": tenant_b,
        "a1": a1,
        "a2": a2,
        "b1": b1,
        "b2": b2,
        "run_a": run_a,
        "run_b": run_b,
    }
