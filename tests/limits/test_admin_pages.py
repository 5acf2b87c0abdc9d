"""Limits and usage in the admin: platform admins see every tenant and change limits (audited);
a tenant admin sees their own tenant only and changes nothing."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from limits.selectors import limits_of
from limits.usage import recorder
from tenants.models import AuditEvent
from tests.conftest import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def platform(db):
    from accounts.models import User

    client = Client()
    client.force_login(User.objects.create_superuser(username="root", password="pw"))
    return client


@pytest.fixture
def alpha_admin(tenant_a):
    user = make_member(tenant=tenant_a, username="alpha-admin", role="admin")
    user.is_staff = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def usage(tenant_a, tenant_b):
    """Some recorded requests of both tenants (B's figure is distinctive: 987654 ms)."""
    recorder.add(tenant_id=tenant_a.pk, status=200, latency_ms=12, db_ms=3, queries=2)
    recorder.add(tenant_id=tenant_a.pk, status=500, latency_ms=20, db_ms=5, queries=2)
    recorder.add(tenant_id=tenant_b.pk, status=200, latency_ms=987654, db_ms=1, queries=1)
    recorder.flush()


def test_platform_admin_sees_every_tenant_and_changes_limits(platform, tenant_a, tenant_b, usage):
    page = platform.get("/admin/limits/tenantlimits/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-tenant="alpha"' in text and 'data-tenant="bravo"' in text

    form = {"plan": "free", "requests_per_second": "7", "reason": "noisy"}
    saved = platform.post(f"/admin/limits/tenantlimits/{tenant_a.pk}/", form)
    assert saved.status_code == 302
    limits = limits_of(tenant_id=tenant_a.pk)
    assert (limits.plan, limits.requests_per_second) == ("free", 7)
    event = AuditEvent.objects.get(action="tenant.limits")
    assert (event.tenant_slug, event.actor, event.reason) == ("alpha", "root", "noisy")

    bad = platform.post(
        f"/admin/limits/tenantlimits/{tenant_a.pk}/", {"plan": "free", "burst": "0"}
    )
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()
    assert limits_of(tenant_id=tenant_a.pk).burst == 10

    chart = platform.get(f"/admin/limits/tenantlimits/{tenant_b.pk}/usage/")
    assert chart.status_code == 200 and "<svg" in chart.content.decode()
    assert "987654" in chart.content.decode()


def test_a_tenant_admin_sees_only_their_tenant(alpha_admin, tenant_a, tenant_b, usage):
    page = alpha_admin.get("/admin/limits/tenantlimits/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-tenant="alpha"' in text and "bravo" not in text

    own = alpha_admin.get(f"/admin/limits/tenantlimits/{tenant_a.pk}/usage/")
    assert own.status_code == 200
    body = own.content.decode()
    # A's two recorded requests plus the admin's own pages; nothing of B (987654 ms).
    assert int(re.search(r"Last 24 hours: (\d+) requests", body).group(1)) >= 2
    assert "<svg" in body and "987654" not in body
    assert alpha_admin.get(f"/admin/limits/tenantlimits/{tenant_b.pk}/usage/").status_code == 404
    assert alpha_admin.get(f"/admin/limits/tenantlimits/{tenant_b.pk}/").status_code == 404

    own_limits = alpha_admin.get(f"/admin/limits/tenantlimits/{tenant_a.pk}/")
    assert own_limits.status_code == 200 and "limits-form" not in own_limits.content.decode()
    refused = alpha_admin.post(f"/admin/limits/tenantlimits/{tenant_a.pk}/", {"plan": "enterprise"})
    assert refused.status_code == 403
    assert limits_of(tenant_id=tenant_a.pk).plan != "enterprise"


def test_a_member_who_is_not_admin_is_not_let_in(client_a, tenant_a):
    response = client_a.get(f"/admin/limits/tenantlimits/{tenant_a.pk}/usage/")
    assert response.status_code in (302, 403)
