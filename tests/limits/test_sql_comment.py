"""Every SQL statement names its tenant and request in a comment that PostgreSQL shows
(pg_stat_activity, the slow-query log), without data values; the request id the client sends
cannot close the comment."""

from __future__ import annotations

import pytest

from limits.sql import safe
from tests.limits.support import Background, holding, wait_for
from tests.rls.support import COMMITTED, owner_execute

pytestmark = [COMMITTED, pytest.mark.urls("tests.limits.urls")]


def _running_hold() -> list[str]:
    rows = owner_execute(
        "SELECT query FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
        ["%pg_advisory_xact_lock_shared%"],
    )
    return [row[0] for row in rows]


@pytest.mark.parametrize(
    ("sent", "shown"),
    [("trace-4711", "trace-4711"), ("x*/ DROP TABLE t; --%s", "x___DROP_TABLE_t__--_s")],
)
def test_a_running_statement_shows_tenant_and_request(client_a, sent, shown):
    with holding() as waiting:
        request = Background(lambda: client_a.get("/api/test/hold/", HTTP_X_REQUEST_ID=sent))
        request.start()
        wait_for(lambda: waiting() == 1, what="the request's statement")
        (query,) = _running_hold()
    request.join(timeout=60)
    assert request.error is None and request.result.status_code == 200
    assert query.startswith(f"/* tenant=alpha request={shown} */ SELECT"), query
    assert "4242" not in query  # the value is bound on the server, not in the text


def test_safe_keeps_identifiers_only():
    assert safe("a*/b%c'd\"e\n" + "x" * 100) == "a__b_c_d_e_" + "x" * 53
