"""Fixtures of the tenancy tests: a populated pair of tenants for the `tenants` commands."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.db import sequences
from tests.tenants.another_database import close_all, in_database
from tests.tenants.cli_support import make_member, tenants
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


# --- a second database on the same server (imports into another database) ----------------


@pytest.fixture(scope="session")
def target_database(django_db_setup, django_db_blocker) -> Iterator[str]:
    """Another database on the same server, created empty and migrated as a new install's
    would be (not copied from the test database: a copy needs that one idle)."""
    name = f"{connections['default'].settings_dict['NAME']}_target"
    quote = connections["owner"].ops.quote_name
    with django_db_blocker.unblock():
        close_all()
        with connections["owner"]._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {quote(name)}")
        with in_database(name):
            call_command("migrate", interactive=False, verbosity=0)
    yield name
    with django_db_blocker.unblock():
        close_all()
        with connections["owner"]._nodb_cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")


@pytest.fixture
def target(target_database) -> Iterator[str]:
    """The other database, emptied with its sequences restarted (a new server's state)."""
    with in_database(target_database):
        call_command("flush", interactive=False, verbosity=0)
    yield target_database
    with in_database(target_database):
        call_command("flush", interactive=False, verbosity=0)
    sequences.forget()


@pytest.fixture
def alpha_with_history(populated):
    """alpha (tenants/conftest.py) with audit history of its own."""
    tenants("suspend", "alpha", "--reason", "unpaid invoice ✓")
    tenants("activate", "alpha")
    return populated
