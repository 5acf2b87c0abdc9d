"""Test set-up: a real PostgreSQL test database created and migrated as the owner role, two
tenants with a member each, and API clients signed in to them."""

from __future__ import annotations

import os
from contextlib import contextmanager

import environ
import pytest
from django.conf import settings
from django.db import connections

from ameide.database import dedicated_owner_settings
from tenants.context import tenant_context
from tests import dedicated

# The dedicated databases `near` and `far` (tests/dedicated.py), before the test databases
# are set up.
dedicated.configure()

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
CITUS_GAPS: dict[str, str] = {}


def pytest_collection_modifyitems(config, items):
    if not settings.TENANCY_CITUS:
        return
    for item in items:
        reason = CITUS_GAPS.get(item.nodeid) or CITUS_GAPS.get(item.nodeid.split("[")[0])
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=f"Citus: {reason}"))


def _owner_of(alias: str) -> dict:
    placement = connections.settings[alias].get("PLACEMENT")
    if placement:
        return dedicated_owner_settings(environ.Env(), name=placement)
    return connections["owner"].settings_dict


@contextmanager
def _as_owner(*aliases: str):
    """Let the runtime aliases use the owner's credentials while the test databases are built
    (default: `default` and every dedicated database's alias)."""
    aliases = aliases or ("default", *dedicated.configured_aliases())
    saved = {}
    for alias in aliases:
        runtime = connections[alias].settings_dict
        owner = _owner_of(alias)
        saved[alias] = {key: runtime[key] for key in ("USER", "PASSWORD")}
        connections[alias].close()
        runtime.update(USER=owner["USER"], PASSWORD=owner["PASSWORD"])
    try:
        yield
    finally:
        for alias in aliases:
            connections[alias].close()
            connections[alias].settings_dict.update(saved[alias])


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
    dedicated.register_owner_aliases()
    settings.ADMISSION_CACHE_SECONDS = 0
    # A move to or from a dedicated database keeps its source frozen this long after the
    # switch (tenants.placement.moving); the tests hold a stale Tenant row explicitly instead
    # of waiting a minute. Children (manage.py) read it from the environment.
    os.environ.setdefault("TENANCY_MOVE_STALE_SECONDS", "0.2")
    settings.TENANCY_MOVE_STALE_SECONDS = float(os.environ["TENANCY_MOVE_STALE_SECONDS"])


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    from django.test.utils import setup_databases, teardown_databases

    from tenants.db.roles import ensure_database, ensure_roles
    from tenants.placement import databases

    test_name = dedicated.session_name()
    # Update in place: Django already filled TEST with its defaults (MIRROR, CHARSET, ...).
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = test_name
    connections["default"].settings_dict.setdefault("TEST", {})["NAME"] = test_name
    # On a Citus cluster (make test-citus) the test database is made a Citus database on every
    # node beforehand (scripts/citus-cluster createdb) and kept; `migrate` distributes it.
    on_citus = settings.TENANCY_CITUS
    with django_db_blocker.unblock():
        ensure_database()
        ensure_roles()
        connections["owner"].close()
        for name in databases.names():
            databases.set_up(name=name)  # the roles on each dedicated database's server
        with _as_owner():
            db_cfg = setup_databases(
                verbosity=0, interactive=False, keepdb=on_citus, serialized_aliases=[]
            )
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


# A suite marked `every_placement` runs once per pair of placements of tenant_a and tenant_b:
# both shared; each in a dedicated schema while the other is shared, and both in schemas of
# their own; and, where the session has dedicated databases (tests/dedicated.py) and the suite
# does not say `every_placement(databases=False)`, each in the database on the other server
# while the other is shared, one in each dedicated database, and a schema tenant next to a
# tenant on the other server. On a Citus cluster (no dedicated schemas or databases there,
# docs/placement.md) both are shared.
SCHEMA_PAIRS = (
    [("shared", "shared"), ("schema", "shared"), ("shared", "schema"), ("schema", "schema")]
    if not settings.TENANCY_CITUS
    else [("shared", "shared")]
)
DATABASE_PAIRS = (
    [
        (dedicated.FAR, "shared"),
        ("shared", dedicated.FAR),
        (dedicated.NEAR, dedicated.FAR),
        ("schema", dedicated.FAR),
    ]
    if dedicated.ENABLED
    else []
)


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("every_placement")
    if "placements" in metafunc.fixturenames and marker:
        pairs = SCHEMA_PAIRS + (DATABASE_PAIRS if marker.kwargs.get("databases", True) else [])
        metafunc.parametrize("placements", pairs, indirect=True, ids=["-".join(p) for p in pairs])


@pytest.fixture
def placements(request) -> tuple[str, str]:
    """Where tenant_a and tenant_b live: shared, unless the suite is marked every_placement."""
    return getattr(request, "param", ("shared", "shared"))


def _placed(request, placements, index: int) -> dict:
    from tenants.models import Placement

    placement = placements[index]
    if placement == "shared":
        return {}
    if placement in (dedicated.NEAR, dedicated.FAR):
        return {"placement": Placement.DATABASE, "placement_name": placement}
    schemas = request.getfixturevalue("placement_schemas")
    return {"placement": Placement.SCHEMA, "placement_name": schemas[index]}


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
