"""Instance methods of a loaded tenant row take the fail-closed, tenant-checked path (THREATS 39)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.context import no_tenant, tenant_context, unscoped
from tenants.exceptions import CrossTenantWrite, TenantNotSet
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(tenant_a, tenant_b):
    with tenant_context(tenant_a):
        a = Workflow.objects.create(name="a")
    with tenant_context(tenant_b):
        b = Workflow.objects.create(name="b")
    return {"a": a, "b": b}


def _exists(tenant, pk) -> bool:
    with tenant_context(tenant):
        return Workflow.objects.filter(pk=pk).exists()


def test_delete_without_a_tenant_fails_closed(rows, tenant_a):
    with no_tenant(), pytest.raises(TenantNotSet):
        rows["a"].delete()
    assert rows["a"].pk is not None and _exists(tenant_a, rows["a"].pk)


def test_delete_of_another_tenants_loaded_row_is_refused(rows, tenant_a, tenant_b):
    with tenant_context(tenant_a), pytest.raises(CrossTenantWrite):
        rows["b"].delete()
    assert rows["b"].pk is not None and _exists(tenant_b, rows["b"].pk)


def test_delete_in_the_rows_tenant_and_under_unscoped_works(rows, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        rows["a"].delete()
    assert not _exists(tenant_a, rows["a"].pk or 0)
    with unscoped(reason="test: delete across tenants"):
        rows["b"].delete()
    assert not _exists(tenant_b, rows["b"].pk or 0)


def test_refresh_and_save_of_another_tenants_row(rows, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        with pytest.raises(Workflow.DoesNotExist):
            rows["b"].refresh_from_db()
        rows["b"].name = "taken over"
        with pytest.raises(CrossTenantWrite):
            rows["b"].save()
    with no_tenant(), pytest.raises(TenantNotSet):
        rows["a"].refresh_from_db()
    with tenant_context(tenant_b):
        assert Workflow.objects.get(pk=rows["b"].pk).name == "b"


def test_save_names_the_tenant_in_the_where_and_never_sets_it(rows, tenant_a):
    """Citus refuses an UPDATE that sets the distribution column (docs/citus.md); the row's
    tenant is in the WHERE instead, also under unscoped(), where the manager adds none."""
    row = rows["a"]
    for block in (lambda: tenant_context(tenant_a), lambda: unscoped(reason="test: save")):
        row.description = "changed"
        with block(), CaptureQueriesContext(connection) as queries:
            row.save()
        updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
        assert len(updates) == 1, updates
        set_part, where = updates[0].split(" WHERE ")
        assert '"tenant_id"' not in set_part
        assert f'"workflows_workflow"."tenant_id" = {tenant_a.pk}' in where
