"""`manage.py demo` (what `make run` loads): the demo is created once; rows deleted afterwards
stay deleted when `make run` runs it again."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def demo() -> str:
    out = io.StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def test_the_demo_loads_two_tenants_and_their_users():
    assert "tenants acme, globex" in demo()
    assert sorted(Tenant.objects.values_list("slug", flat=True)) == ["acme", "globex"]
    assert Client().login(username="alice", password="demo")
    acme = Tenant.objects.get(slug="acme")
    with tenant_context(acme):
        assert Workflow.objects.count() == 5
        assert Membership.objects.get(user__username="alice").role == "admin"
    [record] = AuditEvent.objects.filter(action="demo.load")
    assert record.actor == "cli:demo"


def test_running_the_demo_again_does_not_bring_back_deleted_rows():
    demo()
    acme = Tenant.objects.get(slug="acme")
    with tenant_context(acme):
        Workflow.objects.filter(name__startswith="Onboard customer").delete()
        Membership.objects.filter(user__username="arthur").delete()
    User.objects.filter(username="gus").update(is_active=False)
    Tenant.objects.filter(slug="globex").update(status="suspended")

    assert "already loaded" in demo()
    with tenant_context(acme):
        assert not Workflow.objects.filter(name__startswith="Onboard customer").exists()
        assert not Membership.objects.filter(user__username="arthur").exists()
        assert Workflow.objects.count() == 4
    assert not User.objects.get(username="gus").is_active
    assert Tenant.objects.get(slug="globex").status == "suspended"
    assert AuditEvent.objects.filter(action="demo.load").count() == 1


def test_a_database_loaded_before_the_record_existed_is_left_alone():
    Tenant.objects.create(slug="acme", external_id="acme", name="Acme Corporation")
    assert "already loaded" in demo()
    assert list(Tenant.objects.values_list("slug", flat=True)) == ["acme"]
    assert not User.objects.filter(username="alice").exists()
    assert AuditEvent.objects.filter(action="demo.load").count() == 1  # recorded now
