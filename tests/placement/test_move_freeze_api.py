"""The freeze of a move through the API: the moving tenant's writes answer 503 with
Retry-After in the API's error shape, its reads go on, and another tenant writes as usual;
in every pair of the placements a move covers (the freeze is per source database and schema)."""

from __future__ import annotations

import pytest
from django.db import connections
from rest_framework.test import APIClient

from tenants.lifecycle.tables import tenant_tables
from tenants.placement import capture
from tenants.placement.databases import register_owner_alias
from tenants.placement.moving import side_of
from tests import dedicated
from tests.conftest import make_member
from tests.placement.move_support import clean_up

pytestmark = pytest.mark.django_db(transaction=True, databases=dedicated.COMMITTED_DATABASES)
MOVABLE_PAIRS = [(a, b) for a in ("shared", "schema") for b in ("shared", "schema")] + (
    [(dedicated.FAR, "shared"), ("shared", dedicated.FAR)] if dedicated.ENABLED else []
)


def _owner(alias: str) -> str:
    return register_owner_alias(alias.removeprefix("placed_")) if alias != "default" else "owner"


@pytest.fixture
def moving():
    yield
    clean_up()
    connections["owner"].close()


@pytest.mark.parametrize("placements", MOVABLE_PAIRS, indirect=True, ids="-".join)
def test_frozen_tenant_writes_get_503_reads_and_other_tenants_go_on(
    moving, tenant_a, tenant_b, client_b
):
    client_a = APIClient()
    client_a.force_login(make_member(tenant=tenant_a, username="ada", role="admin"))
    made = client_a.post("/api/workflows/", {"name": "before the freeze"}, format="json")
    assert made.status_code == 201, made.content
    existing = made.json()
    sources = [side_of(tenant_a.placement, tenant_a.placement_name, t) for t in tenant_tables()]
    for side, table in zip(sources, tenant_tables(), strict=True):
        capture.ensure_objects(using=_owner(side.alias))
        capture.create_triggers(
            schema=side.schema,
            table=table.db_table,
            pk=table.pk.column,
            tenant_id=tenant_a.pk,
            using=_owner(side.alias),
        )
    for side in set(sources):
        capture.freeze(tenant_id=tenant_a.pk, schema=side.schema, using=_owner(side.alias))
    try:
        created = client_a.post("/api/workflows/", {"name": "during"}, format="json")
        assert created.status_code == 503, created.content
        assert created["Retry-After"] == "1"
        assert created.json()["code"] == "tenant_moving"
        changed = client_a.patch(
            f"/api/workflows/{existing['id']}/", {"name": "renamed"}, format="json"
        )
        assert changed.status_code == 503
        deleted = client_a.delete(f"/api/workflows/{existing['id']}/")
        assert deleted.status_code == 503

        listed = client_a.get("/api/workflows/")
        assert listed.status_code == 200
        assert [w["name"] for w in listed.json()["results"]] == ["before the freeze"]

        other = client_b.post("/api/workflows/", {"name": "b writes"}, format="json")
        assert other.status_code == 201, other.content
    finally:
        for side in set(sources):
            capture.unfreeze(tenant_id=tenant_a.pk, using=_owner(side.alias))
    # Unfrozen: the same write goes through (the triggers only log it now).
    again = client_a.post("/api/workflows/", {"name": "after"}, format="json")
    assert again.status_code == 201, again.content
