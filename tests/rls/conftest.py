"""Fixtures of the row-level security tests: two tenants with workflows and runs, and a second
database alias."""

from __future__ import annotations

import copy

import pytest
from django.db import connections

from tenants.context import tenant_context
from tests.rls.support import SECOND_ALIAS, Caller, free_port

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


@pytest.fixture
def callers(two_tenants, client_a, client_b) -> dict[str, Caller]:
    return {
        "a": Caller("a", str(two_tenants["a"].pk), client_a.cookies["sessionid"].value),
        "b": Caller("b", str(two_tenants["b"].pk), client_b.cookies["sessionid"].value),
        "anonymous": Caller("anonymous", ""),
    }


@pytest.fixture
def token_callers(two_tenants, settings) -> tuple[int, dict[str, Caller]]:
    """Bearer tokens of the development issuer of a server on a port chosen now."""
    from accounts.dev_issuer import mint_access_token

    port = free_port()
    settings.DEV_ISSUER_URL = f"http://127.0.0.1:{port}/dev-issuer"
    callers = {}
    for name in ("a", "b"):
        tenant = two_tenants[name]
        token = mint_access_token(tenant=tenant, username=f"token-user-{name}", ttl=3600)
        callers[f"{name} token"] = Caller(f"{name} token", str(tenant.pk), token=token)
    return port, callers
