"""Dedicated databases of the test session: `near` on the test database's own server and `far`
on the other one (the embedded PostgreSQL and the machine's PostgreSQL on 127.0.0.1:5432 are
two servers; whichever DATABASE_URL names, `far` is the other).

Unless AMEIDE_DATABASES is already set, the session names both in it (the owner's addresses,
as in development: the runtime role logs in to them as AMEIDE_APP_ROLE), so that child
processes (manage.py, gunicorn) and the owner aliases see the same databases. Each is a test
database of its own: AMEIDE_TEST_PLACED_PREFIX (default `<test database>_placed_`) + name.
AMEIDE_TEST_FAR_URL overrides the other server's address (its database name is replaced).
The test database's own name comes from here too (session_name: one per checkout by default).

Not on a Citus cluster (`make test-citus`), where dedicated databases are not built: there,
and with AMEIDE_TEST_DEDICATED=false, the matrices run with shared tenants only and the tests
of dedicated databases are skipped (a failure under CI=true).
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse

import environ
import pytest
from django.conf import settings
from django.db import connections

from ameide.database import dedicated_alias, dedicated_database_settings, owner_settings
from ameide.embedded_db import PROJECT_ROOT
from ameide.embedded_db import database_url as embedded_url
from tenants.models import Placement, Tenant
from tenants.placement import databases

ENABLED = not settings.TENANCY_CITUS and os.environ.get("AMEIDE_TEST_DEDICATED") != "false"
NEEDED = pytest.mark.skipif(not ENABLED, reason="no dedicated databases in this session")
NEAR, FAR = "near", "far"
ALIASES = [dedicated_alias(NEAR), dedicated_alias(FAR)] if ENABLED else []
# The databases tests touching placed tenants name (pytest.mark.django_db(databases=...)).
DATABASES = ["default", *ALIASES]
# Transactional tests (committed rows): the owners too, whose flush empties the tables.
COMMITTED_DATABASES = [*DATABASES, "owner", *(f"{alias}_owner" for alias in ALIASES)]


def session_name() -> str:
    """The test database's name: AMEIDE_TEST_DB_NAME, else `test_ameide_` and a tag of this
    checkout.

    Two checkouts on one machine (a `fresh-check` clone beside the working tree) share the
    machine's PostgreSQL, where `far` lives (and the test database itself when DATABASE_URL
    names that server), and its Redis, whose keys the limits tests name after the database.
    Under one default name each session created and dropped the other's databases: a run beside
    another failed hundreds of tests with "database ... does not exist"."""
    name = os.environ.get("AMEIDE_TEST_DB_NAME")
    if name:
        return name
    tag = hashlib.sha1(str(PROJECT_ROOT).encode(), usedforsecurity=False).hexdigest()[:6]
    return f"test_ameide_{tag}"


def _url(config: dict, *, name: str) -> str:
    user = urllib.parse.quote(config["USER"] or "postgres")
    password = f":{urllib.parse.quote(config['PASSWORD'])}" if config.get("PASSWORD") else ""
    options = config.get("OPTIONS", {})
    host = str(options.get("host") or config.get("HOST") or "")
    port = str(options.get("port") or config.get("PORT") or "5432")
    if host.startswith("/"):
        query = urllib.parse.urlencode({"host": host, "port": port})
        return f"postgres://{user}{password}@/{name}?{query}"
    return f"postgres://{user}{password}@{host or '127.0.0.1'}:{port}/{name}"


def _renamed(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def configure() -> None:
    """Name `near` and `far` in AMEIDE_DATABASES and add their runtime aliases (at import of
    tests/conftest.py, before the test databases are set up)."""
    if not ENABLED:
        return
    if not os.environ.get("AMEIDE_DATABASES"):
        prefix = os.environ.get("AMEIDE_TEST_PLACED_PREFIX") or f"{session_name()}_placed_"
        owner = owner_settings(environ.Env())
        near = _url(owner, name=f"{prefix}{NEAR}")
        host = owner.get("OPTIONS", {}).get("host") or owner.get("HOST") or ""
        on_embedded = str(host).startswith("/")
        far_url = os.environ.get("AMEIDE_TEST_FAR_URL") or (
            "postgres://postgres@127.0.0.1:5432/postgres" if on_embedded else embedded_url(name="x")
        )
        far = _renamed(far_url, f"{prefix}{FAR}")
        os.environ["AMEIDE_DATABASES"] = f"{NEAR}={near};{FAR}={far}"
    added = dedicated_database_settings(environ.Env(), like=connections.settings["default"])
    for alias, config in added.items():
        # The URL names the test database itself: created (or re-created) and dropped as such.
        config["TEST"] = {"NAME": config["NAME"]}
    configured = connections.configure_settings(
        {"default": connections.settings["default"], **added}
    )
    for alias in added:
        connections.settings.setdefault(alias, configured[alias])


def register_owner_aliases() -> None:
    """The owner alias of each dedicated database for the whole session (as `owner` is), a
    test mirror of its runtime alias: transactional tests name them in `databases`."""
    for name in databases.names():
        alias = databases.register_owner_alias(name)
        connections.settings[alias]["TEST"] = {"MIRROR": dedicated_alias(name)}


def configured_aliases() -> list[str]:
    """Every dedicated database's runtime alias in this session."""
    return [dedicated_alias(name) for name in databases.names()]


def make_tenant(*, slug: str, placement: str):
    """A tenant in the shared tables ('') or in dedicated database `placement`."""
    if not placement:
        return Tenant.objects.create(slug=slug, external_id=slug, name=slug.title())
    return Tenant.objects.create(
        slug=slug,
        external_id=slug,
        name=slug.title(),
        placement=Placement.DATABASE,
        placement_name=placement,
    )
