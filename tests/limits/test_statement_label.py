"""Every transaction names its tenant and request in the application_name PostgreSQL shows
(pg_stat_activity, `%a` in the slow-query log), without data values: the tenant by a label
only operators can map back (every session of the runtime role reads that column), what the
client sends as its request id as an identifier; and the statement's text stays the same."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tenants.actor import acting
from tenants.context import tenant_context
from tenants.db.backend.base import statement_label
from tenants.db.signing import tenant_label
from tenants.models import Tenant
from tests.limits.support import Background, holding, wait_for
from tests.rls.support import COMMITTED, owner_execute

pytestmark = [COMMITTED, pytest.mark.urls("tests.limits.urls")]


def _running_hold() -> list[tuple[str, str]]:
    return owner_execute(
        "SELECT application_name, query FROM pg_stat_activity "
        "WHERE query LIKE %s AND pid <> pg_backend_pid()",
        ["%pg_advisory_xact_lock_shared%"],
    )


@pytest.mark.parametrize(
    ("sent", "shown"),
    [("trace-4711", "trace-4711"), ("x*/ DROP TABLE t; --%s'", "x___DROP_TABLE_t__--_s_")],
)
def test_a_running_statement_shows_tenant_and_request(client_a, sent, shown):
    with holding() as waiting:
        request = Background(lambda: client_a.get("/api/test/hold/", HTTP_X_REQUEST_ID=sent))
        request.start()
        wait_for(lambda: waiting() == 1, what="the request's statement")
        ((label, query),) = _running_hold()
    request.join(timeout=60)
    assert request.error is None and request.result.status_code == 200
    alpha = Tenant.objects.get(slug="alpha")
    assert label == f"t={tenant_label(alpha.pk)} r={shown}"
    assert "alpha" not in label
    assert query.startswith("SELECT"), query  # the same text for every request
    assert "4242" not in query  # the value is bound on the server, not in the text


def test_the_label_keeps_identifiers_only_within_postgresql_s_63_bytes():
    with (
        acting(name="t", request_id="a*/b%c'd\"e\n" + "x" * 100),
        tenant_context(Tenant(pk=1, slug="s" * 63)),
    ):
        label = statement_label()
    assert label == f"t={tenant_label(1)} r=a__b_c_d_e_" + "x" * 21
    assert len(label.encode()) <= 63


def test_tenants_show_gives_operators_the_label(tenant_a, capsys):
    call_command("tenants", "show", tenant_a.slug, "--json")
    assert f'"statement_label": "t={tenant_label(tenant_a.pk)}"' in capsys.readouterr().out
    assert tenant_label(tenant_a.pk) != tenant_label(tenant_a.pk + 1)
