"""Fixtures of the admin tests: a tenant admin of A, a platform admin, and two tenants' objects
with distinctive names (B's all contain SECRET-B) to look for on every page."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.context import tenant_context
from tests.admin.support import SECRET


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are created in every test: a cheap hasher keeps the matrix fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_a(tenant_a):
    from tests.conftest import make_member

    user = make_member(tenant=tenant_a, username="alpha-admin", role="admin")
    user.is_staff = True
    user.email = "alpha-admin@alpha.example"
    user.save()
    return user


@pytest.fixture
def platform_admin(db):
    from accounts.models import User

    return User.objects.create_superuser(username="root", password="pw", email="root@ops.example")


@pytest.fixture
def world(tenant_a, tenant_b, admin_a):
    """Objects in A and B; B's user, workflow and membership names carry SECRET-B."""
    from accounts.models import Membership, User
    from workflows.models import Workflow, WorkflowRun

    member_a = User.objects.create_user(
        username="alpha-member", password="pw", home_tenant=tenant_a, email="m@alpha.example"
    )
    user_b = User.objects.create_user(
        username=f"{SECRET}-user",
        password="pw",
        home_tenant=tenant_b,
        email=f"{SECRET}-user@bravo.example",
        first_name=f"{SECRET}-first",
    )
    with tenant_context(tenant_b):
        Membership.objects.create(user=user_b, role="admin")
        wb = Workflow.objects.create(
            name=f"{SECRET}-workflow", description=f"{SECRET}-description", owner=user_b
        )
        rb = WorkflowRun.objects.create(workflow=wb, input={"secret": SECRET})
        mb = Membership.objects.get(user=user_b)
    with tenant_context(tenant_a):
        Membership.objects.create(user=member_a, role="member")
        wa = Workflow.objects.create(name="alpha-flow", description="a's", owner=admin_a)
        wa2 = Workflow.objects.create(name="alpha-second", owner=member_a)
        ra = WorkflowRun.objects.create(workflow=wa)
        ma = Membership.objects.get(user=member_a)
    return {
        "a": {"workflow": wa, "workflow2": wa2, "run": ra, "membership": ma, "user": member_a},
        "b": {"workflow": wb, "run": rb, "membership": mb, "user": user_b},
    }


@pytest.fixture
def client_admin_a(admin_a) -> Client:
    client = Client()
    client.force_login(admin_a)
    return client


@pytest.fixture
def client_platform(platform_admin) -> Client:
    client = Client()
    client.force_login(platform_admin)
    return client
