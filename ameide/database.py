"""Where the database roles come from: the runtime role for the app, the owner for migrations only."""

from __future__ import annotations

import os
import re

import environ
from django.core.exceptions import ImproperlyConfigured

from ameide.embedded_db import database_url

RUNTIME_ROLE_DEFAULT = "ameide_app"
BREAKGLASS_ROLE_DEFAULT = "ameide_breakglass"
TENANT_DB_ENGINE = "tenants.db.backend"
OWNER_DB_ENGINE = "django.db.backends.postgresql"


def _parse(url: str, *, engine: str) -> dict:
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = engine
    return config


def _owner_url(env: environ.Env) -> tuple[str, bool]:
    """(owner URL, whether DATABASE_URL names the runtime role) from the environment."""
    owner_url = env.str("DATABASE_OWNER_URL", default="")
    runtime_url = env.str("DATABASE_URL", default="")
    if owner_url:
        return owner_url, bool(runtime_url)
    if runtime_url:
        return runtime_url, False
    return database_url(name=os.environ.get("AMEIDE_DB_NAME", "ameide")), False


def database_settings(env: environ.Env) -> dict[str, dict]:
    """DATABASES of every process: one alias, `default`, logged in as the runtime role.

    - DATABASE_OWNER_URL set: DATABASE_URL is the runtime role's address.
    - Only DATABASE_URL set (development): the runtime role is the same server and database
      with user AMEIDE_APP_ROLE; `tenants check` reports that this process was handed the
      owner's address.
    - Neither set: the embedded PostgreSQL, database `ameide`, same rule as the line above.

    The owner's credentials are never an alias here: `migrate`, `flush` and `tenants setup`
    add one for their own run only (tenants.db.owner).
    """
    owner_url, runtime_given = _owner_url(env)
    if runtime_given:
        runtime = _parse(env.str("DATABASE_URL"), engine=TENANT_DB_ENGINE)
    else:
        runtime = _parse(owner_url, engine=TENANT_DB_ENGINE)
        runtime["USER"] = env.str("AMEIDE_APP_ROLE", default=RUNTIME_ROLE_DEFAULT)
        runtime["PASSWORD"] = env.str("AMEIDE_APP_PASSWORD", default="")
    runtime.update(
        ATOMIC_REQUESTS=True,
        # Persistent connections: a connection costs several milliseconds, and nothing of a
        # tenant outlives its transaction. The health check is the backend's, and costs no
        # round trip (tenants.db.backend.base.DatabaseWrapper.is_usable).
        CONN_MAX_AGE=env.int("CONN_MAX_AGE", default=60),
        CONN_HEALTH_CHECKS=True,
        # Behind PgBouncer in transaction mode a cursor must not outlive its transaction.
        DISABLE_SERVER_SIDE_CURSORS=env.bool("DISABLE_SERVER_SIDE_CURSORS", default=False),
    )
    options = runtime.setdefault("OPTIONS", {})
    options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
    # Parameters bound by the server: no tenant's values in query text (pg_stat_activity).
    options["server_side_binding"] = True
    if env.bool("AMEIDE_CITUS", default=False):
        # SET LOCAL reaches the workers only with this (docs/citus.md).
        options["options"] = "-c citus.propagate_set_commands=local"
    return {"default": runtime, **dedicated_database_settings(env, like=runtime)}


def owner_settings(env: environ.Env) -> dict:
    """The owner's alias, for migrations and role set-up only (tenants.db.owner)."""
    owner_url, _ = _owner_url(env)
    owner = _parse(owner_url, engine=OWNER_DB_ENGINE)
    owner.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3)
    )
    owner["TEST"] = {"MIRROR": "default"}
    return owner


# Dedicated databases (docs/placement.md, "Dedicated database"): the servers a tenant may be
# placed on, by name. The name is all a tenant row holds; addresses and secrets come from here.
DEDICATED_ALIAS_PREFIX = "placed_"
_DEDICATED_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")


def parse_named_urls(value: str, *, variable: str) -> dict[str, str]:
    """`name=url;name=url` (AMEIDE_DATABASES, AMEIDE_DATABASES_OWNER) as {name: url}."""
    named: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(";"))):
        name, sep, url = entry.partition("=")
        name = name.strip()
        if not sep or not _DEDICATED_NAME.fullmatch(name) or not url.strip():
            raise ImproperlyConfigured(
                f"{variable}: expected name=postgres://...;name2=... with names of lower-case "
                f"letters, digits and _ (at most 31), got {entry.split('=')[0]!r}"
            )
        if name in named:
            raise ImproperlyConfigured(f"{variable}: {name!r} is named twice")
        named[name] = url.strip()
    return named


def dedicated_alias(name: str) -> str:
    """The DATABASES alias of the dedicated database `name`."""
    return f"{DEDICATED_ALIAS_PREFIX}{name}"


def dedicated_database_settings(env: environ.Env, *, like: dict) -> dict[str, dict]:
    """One runtime alias per dedicated database named in AMEIDE_DATABASES.

    As with DATABASE_URL: with AMEIDE_DATABASES_OWNER set, AMEIDE_DATABASES holds the runtime
    role's addresses; without it (development), they are the owner's and the process logs in as
    AMEIDE_APP_ROLE there, which `tenants check` reports.
    """
    named = parse_named_urls(env.str("AMEIDE_DATABASES", default=""), variable="AMEIDE_DATABASES")
    runtime_given = bool(env.str("AMEIDE_DATABASES_OWNER", default=""))
    aliases = {}
    for name, url in named.items():
        config = _parse(url, engine=TENANT_DB_ENGINE)
        if not runtime_given:
            config["USER"] = like["USER"]
            config["PASSWORD"] = like["PASSWORD"]
        options = {**like["OPTIONS"], **config.get("OPTIONS", {})}
        config.update(
            CONN_MAX_AGE=like["CONN_MAX_AGE"],
            CONN_HEALTH_CHECKS=like["CONN_HEALTH_CHECKS"],
            DISABLE_SERVER_SIDE_CURSORS=like["DISABLE_SERVER_SIDE_CURSORS"],
            OPTIONS=options,
            # Not every request opens a transaction on every dedicated database: the tenant
            # middleware opens one on the current tenant's database only (tenants.placement).
            ATOMIC_REQUESTS=False,
            PLACEMENT=name,
        )
        aliases[dedicated_alias(name)] = config
    return aliases


def dedicated_owner_settings(env: environ.Env, *, name: str) -> dict:
    """The owner's alias of dedicated database `name`: for migrations and set-up only.

    From AMEIDE_DATABASES_OWNER, or (development) AMEIDE_DATABASES itself, which then holds the
    owner's address as DATABASE_URL does when DATABASE_OWNER_URL is unset.
    """
    owners = parse_named_urls(
        env.str("AMEIDE_DATABASES_OWNER", default=""), variable="AMEIDE_DATABASES_OWNER"
    )
    if not owners:
        owners = parse_named_urls(
            env.str("AMEIDE_DATABASES", default=""), variable="AMEIDE_DATABASES"
        )
    if name not in owners:
        raise ImproperlyConfigured(f"no owner address for dedicated database {name!r}")
    owner = _parse(owners[name], engine=OWNER_DB_ENGINE)
    owner.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3)
    )
    owner["PLACEMENT"] = name
    return owner
