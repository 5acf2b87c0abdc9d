"""`manage.py tenants limits`: plan defaults, overrides, validation, audit, JSON."""

from __future__ import annotations

import json

import pytest

from limits.selectors import limits_of
from tenants.models import AuditEvent
from tests.tenants.cli_support import refused, tenants

pytestmark = pytest.mark.django_db


def test_a_tenant_without_a_row_has_the_default_plan(tenant_a, settings):
    out, _ = tenants("limits", "alpha", "--json")
    data = json.loads(out)
    assert data["plan"] == settings.TENANCY_DEFAULT_PLAN
    plan = settings.TENANCY_PLANS[settings.TENANCY_DEFAULT_PLAN]
    assert {k: data[k] for k in plan} == plan
    assert data["overrides"] == []


def test_plan_and_overrides_change_and_are_audited(tenant_a, tenant_b, settings):
    tenants("limits", "alpha", "--plan", "free")
    out, _ = tenants(
        "limits", "alpha", "--set", "requests_per_second=7", "burst=9", "--json", "--reason", "x"
    )
    data = json.loads(out)
    free = settings.TENANCY_PLANS["free"]
    assert data["plan"] == "free"
    assert data["requests_per_second"] == 7 and data["burst"] == 9
    assert data["rows_per_model"] == free["rows_per_model"]
    assert data["overrides"] == ["burst", "requests_per_second"]
    assert limits_of(tenant_id=tenant_a.pk).requests_per_second == 7
    # The other tenant keeps the default plan.
    assert limits_of(tenant_id=tenant_b.pk).plan == settings.TENANCY_DEFAULT_PLAN

    events = list(AuditEvent.objects.filter(action="tenant.limits").order_by("id"))
    assert [e.tenant_slug for e in events] == ["alpha", "alpha"]
    assert events[1].details["overrides"] == [{}, {"requests_per_second": 7, "burst": 9}]
    assert events[1].reason == "x" and events[1].actor.startswith("cli:limits")

    out, _ = tenants("limits", "alpha", "--unset", "burst")
    assert "burst: 10\n" in out + "\n" and "requests_per_second: 7  (override)" in out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--set", "nope=1"], "Unknown limit 'nope'"),
        (["--set", "burst=0"], "burst must be between 1"),
        (["--set", "burst=many"], "burst must be an integer"),
        (["--set", "burst"], "KEY=VALUE"),
        (["--plan", "gold"], "Unknown plan 'gold'"),
        (["--unset", "nope"], "Unknown limit 'nope'"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(tenant_a, args, match):
    refused("limits", "alpha", "--set", "burst=3", *args, match=match)
    assert limits_of(tenant_id=tenant_a.pk).burst != 3
    assert not AuditEvent.objects.filter(action="tenant.limits").exists()


def test_an_unknown_tenant_is_refused(db):
    refused("limits", "nobody", match="No tenant")
