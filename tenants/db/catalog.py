"""Live audit of the connected database: RLS, policies, composite keys, indexes and roles."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.db import connections

from tenants.models import TenantModel
from tenants.scoping import tenant_foreign_keys


def tenant_models() -> list[type[TenantModel]]:
    return [
        m
        for m in apps.get_models()
        if issubclass(m, TenantModel) and m._meta.managed and not m._meta.proxy
    ]


def _columns(cursor, table: str) -> dict[int, str]:
    cursor.execute(
        "SELECT attnum, attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
        [table],
    )
    return dict(cursor.fetchall())


def audit_database(*, using: str = "owner") -> list[str]:
    """Return one line per finding; an empty list means the database is as it must be."""
    findings: list[str] = []
    runtime = settings.TENANCY_RUNTIME_ROLE
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [runtime])
        row = cursor.fetchone()
        if row is None:
            findings.append(f"runtime role {runtime} does not exist (run `tenants setup`)")
        else:
            if row[0]:
                findings.append(f"runtime role {runtime} is SUPERUSER")
            if row[1]:
                findings.append(f"runtime role {runtime} has BYPASSRLS")
            cursor.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE r.rolname = %s AND n.nspname = current_schema()",
                [runtime],
            )
            for (relname,) in cursor.fetchall():
                findings.append(f"runtime role {runtime} owns {relname}")

        for model in tenant_models():
            table = model._meta.db_table
            cursor.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE oid = to_regclass(%s)",
                [table],
            )
            flags = cursor.fetchone()
            if flags is None:
                findings.append(f"{table}: table is missing (run migrate)")
                continue
            if not flags[0]:
                findings.append(f"{table}: row level security is not ENABLEd")
            if not flags[1]:
                findings.append(f"{table}: row level security is not FORCEd")
            cursor.execute(
                "SELECT policyname, qual, with_check, roles FROM pg_policies "
                "WHERE tablename = %s AND schemaname = current_schema()",
                [table],
            )
            policies = cursor.fetchall()
            isolation = [p for p in policies if p[0].endswith("_isolation")]
            if not isolation:
                findings.append(f"{table}: no tenant isolation policy")
            for name, qual, with_check, _roles in policies:
                if not with_check:
                    findings.append(f"{table}: policy {name} has no WITH CHECK")
                if name.endswith("_isolation") and "app.tenant_id" not in (qual or ""):
                    findings.append(f"{table}: policy {name} does not test app.tenant_id")
                if name.endswith("_isolation") and " IS NULL" in (qual or "").upper():
                    findings.append(f"{table}: policy {name} has an IS NULL escape")
            if row is not None:
                cursor.execute("SELECT has_table_privilege(%s, %s, 'TRUNCATE')", [runtime, table])
                if cursor.fetchone()[0]:
                    findings.append(f"{table}: runtime role {runtime} may TRUNCATE")
            columns = _columns(cursor, table)
            cursor.execute(
                "SELECT conkey, confrelid::regclass::text FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f'",
                [table],
            )
            foreign = [
                ([columns[k] for k in conkey], target) for conkey, target in cursor.fetchall()
            ]
            for field in tenant_foreign_keys(model):
                if ["tenant_id", field.column] not in [cols for cols, _ in foreign]:
                    findings.append(
                        f"{table}: no composite foreign key (tenant_id, {field.column})"
                    )
            cursor.execute("SELECT indkey[0] FROM pg_index WHERE indrelid = %s::regclass", [table])
            leading = {columns.get(first) for (first,) in cursor.fetchall()}
            if "tenant_id" not in leading:
                findings.append(f"{table}: no index leading with tenant_id")
    return findings
