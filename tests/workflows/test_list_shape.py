"""The workflow list's owners: joined in the same query where the workflows are in the shared
tables next to the users (on one server), a second query otherwise: a tenant in a dedicated
database, on Citus, and a tenant in a dedicated schema, whose one-tenant table PostgreSQL would
merge with the whole user table (tenants.placement.router.joins_global_rows). The shapes return
the same rows (the API matrices run both). Either way only the owner's key and name are read."""

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
        sql = str(workflows.query)
        prefetched = tuple(p.prefetch_through for p in workflows._prefetch_related_lookups)
        owners = [str(p.queryset.query) for p in workflows._prefetch_related_lookups]
        for text in (sql, *owners):
            assert '"accounts_user"."password"' not in text
            assert '"accounts_user"."email"' not in text
        if owners:
            assert '"accounts_user"."username"' in owners[0]
        return '"accounts_user"."username"' in sql, prefetched


def test_a_shared_tenant_gets_its_owners_in_the_same_query():
    assert _shape(Tenant(pk=1, slug="a", placement=Placement.SHARED)) == (True, ())


def test_a_tenant_in_a_dedicated_schema_gets_them_in_a_second_query():
    tenant = Tenant(pk=1, slug="a", placement=Placement.SCHEMA, placement_name="x")
    assert _shape(tenant) == (False, ("owner",))


@dedicated.NEEDED
def test_a_tenant_in_a_dedicated_database_gets_them_in_a_second_query():
    tenant = Tenant(pk=1, slug="a", placement=Placement.DATABASE, placement_name=dedicated.NEAR)
    assert _shape(tenant) == (False, ("owner",))


def test_on_citus_the_owners_come_in_a_second_query(settings):
    settings.TENANCY_CITUS = True
    assert _shape(Tenant(pk=1, slug="a")) == (False, ("owner",))
