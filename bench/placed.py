"""Tenants of pair 12 in each placement: copies of a shared tenant's rows in a dedicated schema and database.

The dedicated database is `near`, on the benchmark's own server (`<main database>_near`),
named in AMEIDE_DATABASES the way development and the tests name theirs (docs/placement.md,
"Dedicated database"): the owner's address, the application logging in there as the runtime
role. `tenants setup` and `migrate` (the commands, as deployed) create and migrate it.

A tenant moves to a dedicated schema with `tenants move`, but not yet to a dedicated database:
both copies are made here, as the owner, from the shared tenant's workflows (the same names,
contents and times, new ids), and the database tenant's placement is set on its row, as
docs/placement.md describes for now. The two tenants are kept across runs (reused while their
row count matches); their rows are outside the shared tables, which stay as built.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse

import psycopg
from django.db import connections

from ameide.embedded_db import database_url
from bench.environment import PROJECT_ROOT
from tenants.models import Placement, Tenant
from tenants.services import tenant_create

NEAR = "near"
SCHEMA = "bench_place_schema"
SCHEMA_SLUG = "bench-place-schema"
DATABASE_SLUG = "bench-place-database"
COLUMNS = "name, description, definition, status, owner_id, created_at, updated_at"


def _renamed(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def database_env(*, main: str) -> dict[str, str]:
    """AMEIDE_DATABASES (and AMEIDE_DATABASES_OWNER with DATABASE_OWNER_URL) naming `near`.

    As DATABASE_URL: with DATABASE_OWNER_URL set, the runtime role's address and the owner's
    apart; otherwise the owner's (or the embedded server's) alone.
    """
    name = f"{main}_{NEAR}"
    if os.environ.get("DATABASE_OWNER_URL"):
        return {
            "AMEIDE_DATABASES": f"{NEAR}={_renamed(os.environ['DATABASE_URL'], name)}",
            "AMEIDE_DATABASES_OWNER": f"{NEAR}={_renamed(os.environ['DATABASE_OWNER_URL'], name)}",
        }
    if os.environ.get("DATABASE_URL"):
        return {"AMEIDE_DATABASES": f"{NEAR}={_renamed(os.environ['DATABASE_URL'], name)}"}
    return {"AMEIDE_DATABASES": f"{NEAR}={database_url(name=name)}"}


def _owner_url(env: dict[str, str]) -> str:
    named = env.get("AMEIDE_DATABASES_OWNER") or env["AMEIDE_DATABASES"]
    return named.split("=", 1)[1]


def _manage(*arguments: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "ameide.settings"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(arguments)}: {done.stderr[-1000:]}")


def ensure_near(*, main: str) -> dict[str, str]:
    """The dedicated database `near` created, its roles and wall set up and migrated (each
    command does nothing when done before); the environment that names it."""
    env = database_env(main=main)
    _manage("tenants", "setup", env=env)
    _manage("migrate", "--no-input", "-v", "0", env=env)
    return env


def _count(cursor, table: str, tenant_id: int) -> int:
    cursor.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id])  # noqa: S608
    return cursor.fetchone()[0]


def schema_copy(*, source: int, owner: str) -> Tenant:
    """A tenant in dedicated schema SCHEMA holding a copy of tenant `source`'s workflows."""
    tenant = Tenant.objects.using(owner).filter(slug=SCHEMA_SLUG).first()
    if tenant is None:
        tenant = tenant_create(
            slug=SCHEMA_SLUG, name="Benchmark schema tenant", placement="schema", schema=SCHEMA
        )
    table = f'"{tenant.placement_name}".workflows_workflow'
    with connections[owner].cursor() as cursor:
        if _count(cursor, table, tenant.pk) != _count(cursor, "workflows_workflow", source):
            cursor.execute(f"DELETE FROM {table} WHERE tenant_id = %s", [tenant.pk])  # noqa: S608
            # The id from the schema's default: the shared tables' sequence.
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, {COLUMNS}) "  # noqa: S608 (fixed names)
                f"SELECT %s, {COLUMNS} FROM public.workflows_workflow WHERE tenant_id = %s "
                "ORDER BY created_at",
                [tenant.pk, source],
            )
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return tenant


def database_copy(*, source: int, owner: str, env: dict[str, str]) -> Tenant:
    """A tenant placed in `near` holding a copy of tenant `source`'s workflows there."""
    tenant, _ = Tenant.objects.using(owner).get_or_create(
        slug=DATABASE_SLUG,
        defaults={"external_id": DATABASE_SLUG, "name": "Benchmark database tenant"},
    )
    if (tenant.placement, tenant.placement_name) != (Placement.DATABASE, NEAR):
        Tenant.objects.using(owner).filter(pk=tenant.pk).update(
            placement=Placement.DATABASE, placement_name=NEAR
        )
        tenant.refresh_from_db(using=owner)
    with connections[owner].cursor() as cursor:
        wanted = _count(cursor, "workflows_workflow", source)
        cursor.execute(
            f"SELECT {COLUMNS.replace('definition', 'definition::text')} "  # noqa: S608
            "FROM workflows_workflow WHERE tenant_id = %s ORDER BY created_at",
            [source],
        )
        rows = cursor.fetchall()
    with psycopg.connect(_owner_url(env), autocommit=True) as near:
        if _count(near.cursor(), "workflows_workflow", tenant.pk) != wanted:
            near.execute("DELETE FROM workflows_workflow WHERE tenant_id = %s", [tenant.pk])
            with near.cursor().copy(
                f"COPY workflows_workflow (tenant_id, {COLUMNS}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row((tenant.pk, *row))
            near.execute("VACUUM (ANALYZE) workflows_workflow")
    return tenant
