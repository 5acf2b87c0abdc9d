"""Where the two database roles come from: the owner (migrations) and the runtime role (the app)."""

from __future__ import annotations

import os

import environ

from ameide.embedded_db import database_url

RUNTIME_ROLE_DEFAULT = "ameide_app"
BREAKGLASS_ROLE_DEFAULT = "ameide_breakglass"
TENANT_DB_ENGINE = "tenants.db.backend"


def _parse(url: str) -> dict:
    config = environ.Env.db_url_config(url)
    config["ENGINE"] = TENANT_DB_ENGINE
    return config


def database_settings(env: environ.Env) -> dict[str, dict]:
    """Build DATABASES with two aliases over one database.

    - DATABASE_OWNER_URL set: DATABASE_URL is the runtime role and DATABASE_OWNER_URL the owner.
    - Only DATABASE_URL set: it is the owner; the runtime role is the same server and database
      with user AMEIDE_APP_ROLE (created by `manage.py tenants roles`).
    - Neither set: the embedded PostgreSQL, database `ameide`, same rule as the line above.
    """
    owner_url = env.str("DATABASE_OWNER_URL", default="")
    runtime_url = env.str("DATABASE_URL", default="")
    if not runtime_url and not owner_url:
        owner_url = database_url(name=os.environ.get("AMEIDE_DB_NAME", "ameide"))
    elif runtime_url and not owner_url:
        owner_url, runtime_url = runtime_url, ""

    owner = _parse(owner_url)
    if runtime_url:
        runtime = _parse(runtime_url)
    else:
        # Its own OPTIONS: a pool or timeout set on one alias must not reach the other.
        runtime = {**owner, "OPTIONS": dict(owner.get("OPTIONS", {}))}
        runtime["USER"] = env.str("AMEIDE_APP_ROLE", default=RUNTIME_ROLE_DEFAULT)
        runtime["PASSWORD"] = env.str("AMEIDE_APP_PASSWORD", default="")

    runtime.update(
        ATOMIC_REQUESTS=True,
        CONN_MAX_AGE=env.int("CONN_MAX_AGE", default=0),
        CONN_HEALTH_CHECKS=True,
        # Behind PgBouncer in transaction mode a cursor must not outlive its transaction.
        DISABLE_SERVER_SIDE_CURSORS=env.bool("DISABLE_SERVER_SIDE_CURSORS", default=False),
    )
    runtime.setdefault("OPTIONS", {})
    runtime["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
    owner.setdefault("OPTIONS", {})
    owner["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=3))
    # The owner alias reads the same test database as default (tests create it as the owner).
    owner["TEST"] = {"MIRROR": "default"}
    return {"default": runtime, "owner": owner}
