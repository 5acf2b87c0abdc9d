"""Work outside the request's transaction: on_commit callbacks, streaming bodies and a second
database alias each see only their tenant, or fail closed (THREATS 4). Committed data: these
run after a commit or on another connection."""

from __future__ import annotations

import json

import pytest
from django.db import connection, connections, transaction

from tenants.context import no_tenant, tenant_context
from tenants.exceptions import TenantNotSet
from tests.rls import probe
from tests.rls.support import SECOND_ALIAS
from workflows.models import Workflow

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "owner", SECOND_ALIAS]),
    pytest.mark.urls("tests.rls.probe_urls"),
]


@pytest.fixture(autouse=True)
def fresh_probe():
    probe.TALLY.clear()
    probe.ON_COMMIT_SEEN.clear()


def raw_tenants(alias: str = "default") -> list[int]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT DISTINCT tenant_id FROM workflows_workflow ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


def test_on_commit_after_a_request_sees_the_request_tenant(two_tenants, client_a, client_b):
    a, b = two_tenants["a"], two_tenants["b"]
    assert client_a.get("/probe/on-commit/", HTTP_X_EXPECT_TENANT=str(a.pk)).status_code == 200
    assert client_b.get("/probe/on-commit/", HTTP_X_EXPECT_TENANT=str(b.pk)).status_code == 200
    seen = probe.ON_COMMIT_SEEN
    assert [s["raw"] for s in seen] == [[a.pk], [b.pk]]
    assert [s["orm"] for s in seen] == [[a.pk], [b.pk]]
    assert all(s["ok"] and not s["in_atomic"] for s in seen)


def test_on_commit_of_an_anonymous_request_fails_closed(two_tenants, client):
    assert client.get("/probe/on-commit/").status_code == 200
    assert [
        {
            "ok": True,
            "in_atomic": False,
            "setting": None,
            "pid": probe.ON_COMMIT_SEEN[0]["pid"],
            "role": connection.settings_dict["USER"],
            "raw": [],
            "orm": "TenantNotSet",
        }
    ] == probe.ON_COMMIT_SEEN


def test_on_commit_runs_in_the_context_current_at_commit(two_tenants):
    """A callback registered inside tenant_context() but committed after it has ended runs with
    no tenant: the ORM refuses and raw SQL sees nothing (it never sees the last tenant)."""
    seen = []

    def callback():
        seen.append(raw_tenants())
        try:
            Workflow.objects.count()
        except TenantNotSet:
            seen.append("TenantNotSet")

    with no_tenant(), transaction.atomic(), tenant_context(two_tenants["a"]):
        Workflow.objects.count()
        transaction.on_commit(callback)
    assert seen == [[], "TenantNotSet"]


def test_a_streaming_body_queries_as_its_request_tenant(two_tenants, client_a, client_b, client):
    a, b = two_tenants["a"], two_tenants["b"]
    for http, expected in ((client_a, [a.pk]), (client_b, [b.pk]), (client, [])):
        header = str(expected[0]) if expected else ""
        response = http.get("/probe/stream/", HTTP_X_EXPECT_TENANT=header)
        assert response.streaming
        chunks = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
        assert [c["chunk"] for c in chunks] == [0, 1, 2]
        assert all(c["ok"] for c in chunks), chunks
        assert all(c["raw"] == expected for c in chunks)
        assert all(c["orm"] == (expected or "TenantNotSet") for c in chunks)
    assert probe.TALLY["mismatches"] == 0 and probe.TALLY["checked"] == 9


def test_a_second_alias_sees_only_the_context_tenant(two_tenants):
    second_alias = SECOND_ALIAS
    a, b = two_tenants["a"], two_tenants["b"]
    with tenant_context(a):
        assert raw_tenants(second_alias) == [a.pk]
        assert set(Workflow.objects.using(second_alias).values_list("tenant_id", flat=True)) == {
            a.pk
        }
        # The request's transaction on `default` does not cover the other alias: still A only.
        with transaction.atomic():
            assert raw_tenants() == [a.pk]
            assert raw_tenants(second_alias) == [a.pk]
        with transaction.atomic(using=second_alias):
            assert raw_tenants(second_alias) == [a.pk]
            with tenant_context(b):
                assert raw_tenants(second_alias) == [b.pk]
            assert raw_tenants(second_alias) == [a.pk]
    with no_tenant():
        assert raw_tenants(second_alias) == []
        with pytest.raises(TenantNotSet):
            Workflow.objects.using(second_alias).count()
