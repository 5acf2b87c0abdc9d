"""Test set-up: a real PostgreSQL test database created and migrated as the owner role, two
tenants with a member each, and API clients signed in to them."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connections

from tenants.context import tenant_context

CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failure: nothing CI must run may be skipped."""
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run everything: {report.longrepr}"


# Tests of `make test-citus` (docs/citus.md) that fail on the cluster for a known reason, held
# as strict xfails there: a fix turns them into failures until this list loses them.
_BREAKGLASS = "counts or reads through unscoped(): break-glass does not reach the workers yet"
CITUS_GAPS = {
    "tests/tenants/test_orm_fail_closed.py::test_write_without_tenant_raises_and_writes_nothing": _BREAKGLASS,
    "tests/tenants/test_orm_fail_closed.py::test_write_under_a_touches_only_a": _BREAKGLASS,
    "tests/tenants/test_orm_fail_closed.py::test_unscoped_needs_a_reason_and_writes_an_audit_row": _BREAKGLASS,
    "tests/tenants/test_orm_fail_closed.py::test_unscoped_write_needs_an_explicit_tenant": _BREAKGLASS,
    "tests/rls/test_rls_red_team.py::test_role_switches_gain_nothing": _BREAKGLASS,
    "tests/rls/test_rls_red_team.py::test_a_rolled_back_unscoped_block_keeps_its_audit_row": _BREAKGLASS,
    "tests/rls/test_rls_red_team.py::test_a_grant_inside_an_outer_transaction_is_committed_first": _BREAKGLASS,
    "tests/rls/test_rls_red_team.py::test_a_closed_grants_scope_opens_nothing": _BREAKGLASS,
    "tests/rls/test_rls_red_team.py::test_a_genuine_value_of_another_connection_is_useless_here": (
        "the test sets the scope with set_config on a raw connection, which Citus does not "
        "pass on to the workers: the victim itself reads 0 rows"
    ),
    "tests/rls/test_rls_red_team.py::test_every_statement_form_carries_the_tenant[do block]": (
        "not explained yet (app.stolen unset after the DO block)"
    ),
}


def pytest_collection_modifyitems(config, items):
    if not settings.TENANCY_CITUS:
        return
    for item in items:
        reason = CITUS_GAPS.get(item.nodeid) or CITUS_GAPS.get(item.nodeid.split("[")[0])
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"Citus: {reason}"))


@contextmanager
def _as_owner(alias: str = "default"):
    """Let the runtime alias use the owner's credentials while the test database is built."""
    runtime = connections[alias].settings_dict
    owner = connections["owner"].settings_dict
    saved = {key: runtime[key] for key in ("USER", "PASSWORD")}
    connections[alias].close()
    runtime.update(USER=owner["USER"], PASSWORD=owner["PASSWORD"])
    try:
        yield
    finally:
        connections[alias].close()
        runtime.update(saved)


def pytest_configure(config):
    """The test process builds and inspects databases as the owner: it gets the owner alias
    that runtime processes never have (tenants.db.owner).

    In this process tests run inside transactions that never commit, so PostgreSQL's
    revocation signal (sent at commit) never comes: the admission cache is off here. Servers
    the tests start (gunicorn, with committed data) keep it on, and
    tests/rls/test_admission_revocation.py holds it to its bound there."""
    from django.conf import settings

    from tenants.db.owner import register_owner_alias

    register_owner_alias()
    settings.ADMISSION_CACHE_SECONDS = 0


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    from django.test.utils import setup_databases, teardown_databases

    from tenants.db.roles import ensure_database, ensure_roles

    test_name = os.environ.get("AMEIDE_TEST_DB_NAME")
    if test_name:
        # Update in place: Django already filled TEST with its defaults (MIRROR, CHARSET, ...).
        settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = test_name
        connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = test_name
    # On a Citus cluster (make test-citus) the test database is made a Citus database on every
    # node beforehand (scripts/citus-cluster createdb), kept, and distributed after migrate.
    on_citus = settings.TENANCY_CITUS
    with django_db_blocker.unblock():
        ensure_database()
        ensure_roles()
        connections["owner"].close()
        with _as_owner():
            db_cfg = setup_databases(
                verbosity=0, interactive=False, keepdb=on_citus, serialized_aliases=[]
            )
        if on_citus:
            from tenants.citus.distribute import tenants_distribute

            tenants_distribute(using="owner")
            connections["owner"].close()
    yield
    with django_db_blocker.unblock(), _as_owner():
        for alias in connections:
            connections[alias].close()
        teardown_databases(db_cfg, verbosity=0, keepdb=on_citus)


# Dedicated schemas the tests place tenants in (docs/placement.md): provisioned once per
# session, on first use, by the same migrations `manage.py migrate` runs for every schema.
TEST_SCHEMAS = ("pt_alpha", "pt_bravo")


@pytest.fixture(scope="session")
def placement_schemas(django_db_setup, django_db_blocker) -> tuple[str, ...]:
    from tenants.placement.schemas import migrate_schema

    with django_db_blocker.unblock():
        for schema in TEST_SCHEMAS:
            migrate_schema(schema, using="owner")
        connections["owner"].close()
    return TEST_SCHEMAS


# A suite marked `every_placement` runs once per pair: both tenants shared, each one in a
# dedicated schema while the other is shared, and both in dedicated schemas (two of them).
PLACEMENT_PAIRS = [
    ("shared", "shared"),
    ("schema", "shared"),
    ("shared", "schema"),
    ("schema", "schema"),
]


def pytest_generate_tests(metafunc):
    if "placements" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "every_placement"
    ):
        metafunc.parametrize(
            "placements", PLACEMENT_PAIRS, indirect=True, ids=["-".join(p) for p in PLACEMENT_PAIRS]
        )


@pytest.fixture
def placements(request) -> tuple[str, str]:
    """Where tenant_a and tenant_b live: shared, unless the suite is marked every_placement."""
    return getattr(request, "param", ("shared", "shared"))


def _placed(request, placements, index: int) -> dict:
    placement = placements[index]
    if placement == "shared":
        return {}
    schemas = request.getfixturevalue("placement_schemas")
    return {"placement": placement, "placement_name": schemas[index]}


@pytest.fixture
def tenant_a(db, request, placements):
    from tenants.models import Tenant

    return Tenant.objects.create(
        slug="alpha", external_id="alpha", name="Alpha Corp", **_placed(request, placements, 0)
    )


@pytest.fixture
def tenant_b(db, request, placements):
    from tenants.models import Tenant

    return Tenant.objects.create(
        slug="bravo", external_id="bravo", name="Bravo Ltd", **_placed(request, placements, 1)
    )


def make_member(*, tenant, username: str, role: str = "member"):
    from accounts.models import Membership, User

    user = User.objects.create_user(username=username, password="pw", home_tenant=tenant)
    with tenant_context(tenant):
        Membership.objects.create(user=user, role=role)
    return user


@pytest.fixture
def user_a(tenant_a):
    return make_member(tenant=tenant_a, username="ann")


@pytest.fixture
def user_b(tenant_b):
    return make_member(tenant=tenant_b, username="bob")


@pytest.fixture
def client_a(user_a):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user_a)
    return client


@pytest.fixture
def client_b(user_b):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user_b)
    return client


@pytest.fixture(autouse=True)
def _usage_buffer_of_this_test_only():
    """Usage the middleware buffers in this process (limits.usage) belongs to the test that
    made it: dropped afterwards, not written at exit into a database that is gone."""
    yield
    from limits.usage import recorder

    with recorder.lock:
        recorder.buffer.clear()
