"""A refusal is always recorded, whatever the refused request carried (THREATS 40, issue 10.13)."""

from __future__ import annotations

import pytest
from django.test import Client

from tenants.context import tenant_context
from tenants.models import AuditEvent
from tests.conftest import make_member

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/workflows/%00/", "/api/workflows/%ED%B3%BF/", "/api/me/"])
def test_a_refused_request_with_nul_or_a_lone_surrogate_is_a_403_and_an_audit_row(tenant_a, path):
    ann = make_member(tenant=tenant_a, username="ann")
    browser = Client()
    browser.force_login(ann)
    with tenant_context(tenant_a):
        ann.memberships.all().delete()
    before = AuditEvent.objects.filter(action="refused.cross_tenant").count()
    response = browser.get(path)
    assert response.status_code == 403
    assert response.json()["code"] == "not_a_member"
    refusals = AuditEvent.objects.filter(action="refused.cross_tenant").order_by("-id")
    assert refusals.count() == before + 1
    recorded = refusals.first().details["path"]
    assert "\x00" not in recorded and recorded.encode("utf-8")  # stored, and storable
