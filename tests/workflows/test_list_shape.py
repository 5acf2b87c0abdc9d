"""The workflow list's owners: joined in the same query where the workflows' database holds the
users (a shared or schema tenant on one server), a second query where it does not (a tenant in
a dedicated database; Citus). The shapes return the same rows (the API matrices run both)."""

from __future__ import annotations

import pytest

from tenants.context import tenant_context
from tenants.models import Placement, Tenant
from tests import dedicated
from workflows import selectors

pytestmark = pytest.mark.django_db(databases=dedicated.DATABASES)


def _shape(tenant: Tenant) -> tuple[bool, tuple]:
    with tenant_context(tenant):
        workflows = selectors.workflow_list()
        return "accounts_user" in str(workflows.query), workflows._prefetch_related_lookups


@pytest.mark.parametrize("placement", [Placement.SHARED, Placement.SCHEMA])
def test_a_tenant_in_default_gets_its_owners_in_the_same_query(placement):
    tenant = Tenant(pk=1, slug="a", placement=placement, placement_name="x")
    assert _shape(tenant) == (True, ())


@dedicated.NEEDED
def test_a_tenant_in_a_dedicated_database_gets_them_in_a_second_query():
    tenant = Tenant(pk=1, slug="a", placement=Placement.DATABASE, placement_name=dedicated.NEAR)
    assert _shape(tenant) == (False, ("owner",))


def test_on_citus_the_owners_come_in_a_second_query(settings):
    settings.TENANCY_CITUS = True
    assert _shape(Tenant(pk=1, slug="a")) == (False, ("owner",))
