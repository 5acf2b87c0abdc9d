"""The database roles: the owner migrates, the runtime role owns nothing, break-glass is audited.

`ensure_roles` creates the runtime and break-glass roles (idempotent, needs CREATEROLE);
`grant_runtime_privileges` runs after every `migrate` as the owner: it installs the wall
(tenants.db.wall: the private schema, its functions and the signing key), brings every row
security policy to what the code declares, and grants the runtime role exactly what it needs:
read and write on the tables, never TRUNCATE, only SELECT on the audit log (rows are appended
through the wall's signed functions) and nothing on the migration history.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db import connections, router

from tenants.constraints import RowSecurity
from tenants.db import wall

AUDIT_TABLE = wall.AUDIT_TABLE


def _role_exists(cursor, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    return cursor.fetchone() is not None


def ensure_database(*, using: str = "owner") -> list[str]:
    """Create the configured database if it does not exist (needs CREATEDB)."""
    connection = connections[using]
    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is not None:
            return []
        cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
    return [f"created database {name}"]


def ensure_roles(*, using: str = "owner") -> list[str]:
    """Create or correct the runtime and break-glass roles; returns what was done."""
    runtime = settings.TENANCY_RUNTIME_ROLE
    breakglass = settings.TENANCY_BREAKGLASS_ROLE
    password = settings.DATABASES["default"].get("PASSWORD") or None
    done: list[str] = []
    connection = connections[using]
    with connection.cursor() as cursor:
        quote = connection.ops.quote_name
        if not _role_exists(cursor, breakglass):
            cursor.execute(f"CREATE ROLE {quote(breakglass)} NOLOGIN")
            done.append(f"created role {breakglass}")
        cursor.execute(
            f"ALTER ROLE {quote(breakglass)} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
        )
        if not _role_exists(cursor, runtime):
            cursor.execute(f"CREATE ROLE {quote(runtime)} LOGIN")
            done.append(f"created role {runtime}")
        # NOINHERIT: the runtime role holds the break-glass role's policy only after an explicit
        # SET ROLE inside unscoped(); its own privileges are granted to it directly.
        cursor.execute(
            f"ALTER ROLE {quote(runtime)} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS "
            "NOCREATEDB NOCREATEROLE NOREPLICATION"
        )
        if password:
            cursor.execute(f"ALTER ROLE {quote(runtime)} PASSWORD %s", [password])
        cursor.execute(f"GRANT {quote(breakglass)} TO {quote(runtime)}")
    return done


def apply_row_security(*, using: str) -> None:
    """Create or refresh every declared policy (and the wall's functions) as the code says."""
    connection = connections[using]
    for model in apps.get_models():
        if not router.allow_migrate_model(using, model):
            continue  # a dedicated database has the placed tables only (tenants.placement)
        for constraint in model._meta.constraints:
            if isinstance(constraint, RowSecurity):
                with connection.schema_editor() as editor:
                    editor.execute(constraint.create_sql(model, editor))


def grant_runtime_privileges(sender=None, using: str = "default", **kwargs) -> None:
    """After migrate: install the wall and grant the runtime roles what they need."""
    if sender is not None and getattr(sender, "name", None) != "tenants":
        return  # post_migrate fires once per app; one pass after the last migration is enough
    connection = connections[using]
    apply_row_security(using=using)
    with connection.cursor() as cursor:
        wall.install(cursor, quote=connection.ops.quote_name)
    runtime = connection.ops.quote_name(settings.TENANCY_RUNTIME_ROLE)
    breakglass = connection.ops.quote_name(settings.TENANCY_BREAKGLASS_ROLE)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        schema = connection.ops.quote_name(cursor.fetchone()[0])
        if not _role_exists(cursor, settings.TENANCY_RUNTIME_ROLE):
            return  # `manage.py tenants setup` has not run; nothing to grant to yet
        for role in (runtime, breakglass):
            cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            cursor.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
            )
            cursor.execute(
                f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {role}"
            )
            cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
            cursor.execute(f"SELECT to_regclass('{AUDIT_TABLE}') IS NOT NULL")
            if cursor.fetchone()[0]:  # not in a dedicated database (tenants.placement)
                cursor.execute(f"REVOKE INSERT, UPDATE, DELETE ON {AUDIT_TABLE} FROM {role}")
            cursor.execute(f"REVOKE INSERT, UPDATE, DELETE ON django_migrations FROM {role}")
        cursor.execute(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC")
