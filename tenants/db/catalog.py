"""Live audit of the connected database: RLS, policies, composite keys, indexes, roles and the
wall's private schema (tenants.db.wall)."""

from __future__ import annotations

import os

import psycopg
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connections, transaction

from tenants.constraints import GlobalRowSecurity, RowLevelSecurity, shared_placements
from tenants.db import wall
from tenants.db.signing import DatabaseScope, scope_value
from tenants.models import TenantModel
from tenants.preparation import tenant_foreign_keys

SIGNED_TEST = "ameide_private.scope_id('t'"


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


def _role_findings(cursor, runtime: str) -> list[str]:
    """Roles the runtime role can become, and defaults that would preset the tenant."""
    findings = []
    cursor.execute(
        "SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r "
        "WHERE r.rolname <> %s AND pg_has_role(%s, r.oid, 'MEMBER') "
        "AND (r.rolsuper OR r.rolbypassrls OR EXISTS (SELECT 1 FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relowner = r.oid AND n.nspname = current_schema()))",
        [runtime, runtime],
    )
    for name, superuser, bypass in cursor.fetchall():
        what = "SUPERUSER" if superuser else "BYPASSRLS" if bypass else "owns tables"
        findings.append(f"runtime role {runtime} can SET ROLE {name}, which {what}")
    # A default of app.tenant_id (or role) would be every fresh session's tenant.
    cursor.execute(
        "SELECT coalesce(r.rolname, '(all roles)'), coalesce(d.datname, '(all databases)'), "
        "s.setconfig FROM pg_db_role_setting s "
        "LEFT JOIN pg_roles r ON r.oid = s.setrole "
        "LEFT JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE (s.setdatabase = 0 OR d.datname = current_database()) "
        "AND (s.setrole = 0 OR pg_has_role(%s, s.setrole, 'MEMBER'))",
        [runtime],
    )
    for role, database, config in cursor.fetchall():
        for entry in config or []:
            if entry.split("=", 1)[0].lower() in (wall.SCOPE_SETTING, "role"):
                findings.append(f"{role} in {database} has a default {entry}")
    return findings


def _schema_findings(cursor, tables: list[str]) -> list[str]:
    """Views and functions that would run as their owner over tenant tables (THREATS 7)."""
    findings = []
    cursor.execute(
        "SELECT DISTINCT v.relname, v.relkind, coalesce(v.reloptions, '{}') FROM pg_depend d "
        "JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "WHERE d.classid = 'pg_rewrite'::regclass AND v.oid <> t.oid AND t.relname = ANY(%s) "
        "AND t.relnamespace = current_schema()::regnamespace",
        [tables],
    )
    for name, kind, options in cursor.fetchall():
        if kind == "m":
            findings.append(f"materialized view {name} copies tenant rows (RLS does not apply)")
        elif "security_invoker=true" not in [o.lower() for o in options]:
            findings.append(f"view {name} reads tenant tables as its owner (no security_invoker)")
    cursor.execute(
        "SELECT p.proname, coalesce(p.proconfig, '{}') FROM pg_proc p "
        "WHERE p.prosecdef AND p.pronamespace = current_schema()::regnamespace"
    )
    for name, config in cursor.fetchall():
        if not any(entry.startswith("search_path=") for entry in config):
            findings.append(f"SECURITY DEFINER function {name} has no pinned search_path")
        else:
            findings.append(f"SECURITY DEFINER function {name} runs as its owner (review it)")
    return findings


def _rls_flags(cursor, table: str) -> tuple[bool, bool] | None:
    """(ENABLE, FORCE) of a table's row level security; None when the table is missing."""
    cursor.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(%s)",
        [table],
    )
    return cursor.fetchone()


def _global_table_findings(cursor) -> list[str]:
    """Global tables declared with GlobalRowSecurity: RLS on, forced, and their two policies."""
    findings = []
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if not isinstance(constraint, GlobalRowSecurity):
                continue
            table = model._meta.db_table
            flags = _rls_flags(cursor, table)
            if flags is None:
                findings.append(f"{table}: table is missing (run migrate)")
                continue
            if not all(flags):
                findings.append(f"{table}: row level security is not ENABLEd and FORCEd")
            cursor.execute(
                "SELECT policyname, permissive FROM pg_policies "
                "WHERE tablename = %s AND schemaname = current_schema()",
                [table],
            )
            names = {name for name, permissive in cursor.fetchall() if permissive == "PERMISSIVE"}
            expected = {f"{constraint.name}_isolation", f"{constraint.name}_breakglass"}
            for missing in sorted(expected - names):
                findings.append(f"{table}: policy {missing} is missing")
            for extra in sorted(names - expected):
                findings.append(f"{table}: unexpected policy {extra}")
    return findings


def _placement_policy_findings(table: str, policies, model, *, home: str) -> list[str]:
    """A shared tenant table's restrictive placement policy (tenants.constraints
    RowLevelSecurity.placement_policy): without it a tenant placed elsewhere could write its
    own rows into the shared table by naming it."""
    expected = wall.placement_check(home, placements=shared_placements(model))
    call = expected.removeprefix("(SELECT ").removesuffix(")")
    for name, _qual, with_check, _roles, permissive in policies:
        if name != wall.PLACEMENT_POLICY:
            continue
        if permissive != "RESTRICTIVE":
            return [f"{table}: policy {name} is not RESTRICTIVE"]
        # PostgreSQL prints the check back with casts and an alias: compare the call itself.
        if call not in (with_check or "").replace("::text", "").replace("[]", ""):
            return [f"{table}: policy {name} does not admit only the tenants placed here"]
        return []
    return [f"{table}: no placement policy {wall.PLACEMENT_POLICY} (run migrate)"]


def _wall_findings(cursor, runtime: str) -> list[str]:
    """The private schema: its key unreadable, its signer uncallable, and the key the same as
    the one this process signs with."""
    findings = []
    cursor.execute("SELECT to_regclass(%s)", [f"{wall.PRIVATE}.scope_key"])
    if cursor.fetchone()[0] is None:
        return [f"schema {wall.PRIVATE} is missing (run migrate)"]
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [runtime])
    if cursor.fetchone() is not None:
        cursor.execute(
            "SELECT has_table_privilege(%s, %s, 'SELECT'), "
            "has_function_privilege(%s, %s, 'EXECUTE'), "
            "has_table_privilege(%s, %s, 'INSERT'), has_table_privilege(%s, %s, 'UPDATE'), "
            "has_table_privilege(%s, %s, 'DELETE')",
            [
                runtime, f"{wall.PRIVATE}.scope_key",
                runtime, f"{wall.PRIVATE}.mac_of(text)",
                runtime, wall.AUDIT_TABLE, runtime, wall.AUDIT_TABLE, runtime, wall.AUDIT_TABLE,
            ],
        )  # fmt: skip
        read_key, sign, insert, update, delete = cursor.fetchone()
        if read_key:
            findings.append(f"runtime role {runtime} can read the signing key")
        if sign:
            findings.append(f"runtime role {runtime} can call {wall.PRIVATE}.mac_of (a signer)")
        for allowed, verb in ((insert, "INSERT"), (update, "UPDATE"), (delete, "DELETE")):
            if allowed:
                findings.append(f"runtime role {runtime} may {verb} audit rows directly")
    cursor.execute(
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = %s::regnamespace "
        "AND NOT (p.prosecdef AND coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp'])",
        [wall.PRIVATE],
    )
    for (name,) in cursor.fetchall():
        findings.append(f"{wall.PRIVATE}.{name} is not SECURITY DEFINER with a pinned search_path")
    # The database must accept what this process signs, or every tenant reads nothing.
    value, _ = scope_value(DatabaseScope("g", 0), backend_pid=0, ttl_seconds=60)
    with transaction.atomic(using=cursor.db.alias):
        cursor.execute(
            f"SELECT set_config(%s, %s, true), {wall.PRIVATE}.scope_id('g')",
            [wall.SCOPE_SETTING, value],
        )
        if cursor.fetchone()[1] is None:
            findings.append(
                "the database's signing key differs from this process's (run `migrate` with "
                "the same SECRET_KEY / AMEIDE_SCOPE_KEY as the app)"
            )
    return findings


def audit_database(*, using: str = "owner") -> list[str]:
    """Return one line per finding; an empty list means the database is as it must be."""
    findings: list[str] = []
    runtime = settings.TENANCY_RUNTIME_ROLE
    breakglass = settings.TENANCY_BREAKGLASS_ROLE
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
            findings.extend(_role_findings(cursor, runtime))
        findings.extend(_schema_findings(cursor, [m._meta.db_table for m in tenant_models()]))
        findings.extend(_wall_findings(cursor, runtime))
        findings.extend(_global_table_findings(cursor))
        # Where Citus is installed the break-glass policies are for every role (no role switch
        # there; tenants.constraints.RowSecurity).
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
        on_citus = cursor.fetchone()[0]
        glass_roles = ["public"] if on_citus else [breakglass]
        cursor.execute("SELECT current_schema()")
        (home,) = cursor.fetchone()

        for model in tenant_models():
            table = model._meta.db_table
            flags = _rls_flags(cursor, table)
            if flags is None:
                findings.append(f"{table}: table is missing (run migrate)")
                continue
            if not flags[0]:
                findings.append(f"{table}: row level security is not ENABLEd")
            if not flags[1]:
                findings.append(f"{table}: row level security is not FORCEd")
            cursor.execute(
                "SELECT policyname, qual, with_check, roles, permissive FROM pg_policies "
                "WHERE tablename = %s AND schemaname = current_schema()",
                [table],
            )
            policies = cursor.fetchall()
            # The policies RowLevelSecurity creates, and to whom; permissive policies are OR-ed,
            # so any other one widens what some role can see.
            expected: dict[str, list[str]] = {}
            for constraint in model._meta.constraints:
                if isinstance(constraint, RowLevelSecurity):
                    expected[f"{constraint.name}_isolation"] = ["public"]
                    expected[f"{constraint.name}_breakglass"] = glass_roles
            names = {p[0] for p in policies}
            if not any(n.endswith("_isolation") and n in names for n in expected):
                findings.append(f"{table}: no tenant isolation policy")
            if not on_citus:
                findings.extend(_placement_policy_findings(table, policies, model, home=home))
            for name, qual, with_check, roles, permissive in policies:
                if permissive != "PERMISSIVE":
                    continue  # a restrictive policy can only narrow what the others admit
                if not with_check:
                    findings.append(f"{table}: policy {name} has no WITH CHECK")
                if expected.get(name) != list(roles or []):
                    findings.append(f"{table}: unexpected policy {name} (to {', '.join(roles)})")
                if name.endswith("_isolation") and SIGNED_TEST not in (qual or ""):
                    findings.append(f"{table}: policy {name} does not test the signed tenant")
                if name.endswith("_isolation") and " IS NULL" in (qual or "").upper():
                    findings.append(f"{table}: policy {name} has an IS NULL escape")
            if row is not None:
                cursor.execute("SELECT has_table_privilege(%s, %s, 'TRUNCATE')", [runtime, table])
                if cursor.fetchone()[0]:
                    findings.append(f"{table}: runtime role {runtime} may TRUNCATE")
            columns = _columns(cursor, table)
            # Citus distributes by tenant_id only a table whose keys include it.
            cursor.execute(
                "SELECT conkey FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
                [table],
            )
            primary = cursor.fetchone()
            if primary is None or [columns[k] for k in primary[0]] != ["tenant_id", "id"]:
                findings.append(f"{table}: primary key is not (tenant_id, id)")
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


def audit_process() -> tuple[list[str], list[str]]:
    """What this process can reach: (failures, warnings).

    Failures: a configured alias logged in as a role that is superuser, bypasses RLS, may create
    roles or owns tables. Warnings: the owner's address in this process's environment, and a
    server that lets this process log in as such a role without a password (trust auth, as on a
    development machine): either way, code in this process could leave the wall.
    """
    failures: list[str] = []
    warnings: list[str] = []
    logins = set()
    for alias in connections:
        config = connections.settings[alias]
        login = tuple(str(config.get(k)) for k in ("HOST", "PORT", "NAME", "USER", "OPTIONS"))
        if login in logins:
            continue  # another alias with the same login (a replica alias, a test mirror)
        logins.add(login)
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(
                    "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, EXISTS (SELECT 1 "
                    "FROM pg_class c WHERE c.relowner = r.oid "
                    "AND c.relnamespace = current_schema()::regnamespace) "
                    "FROM pg_roles r WHERE r.rolname = current_user"
                )
                user, superuser, bypass, createrole, owns = cursor.fetchone()
        except DatabaseError:
            if config.get("PLACEMENT"):
                continue  # an unreachable dedicated database: tenants.placement reports it
            raise
        for flag, what in (
            (superuser, "SUPERUSER"),
            (bypass, "BYPASSRLS"),
            (createrole, "CREATEROLE"),
            (owns, "owns tables"),
        ):
            if flag:
                failures.append(f"this process's alias {alias!r} logs in as {user}, which {what}")
    if os.environ.get("DATABASE_OWNER_URL"):
        warnings.append("DATABASE_OWNER_URL is set in this process's environment")
    if os.environ.get("AMEIDE_DATABASES_OWNER"):
        warnings.append("AMEIDE_DATABASES_OWNER is set in this process's environment")
    elif os.environ.get("DATABASE_URL"):
        warnings.append(
            "DATABASE_URL is the owner's address (set DATABASE_OWNER_URL for migrations only "
            "and DATABASE_URL to the runtime role's)"
        )
    warnings.extend(_passwordless_logins())
    return failures, warnings


def _passwordless_logins() -> list[str]:
    """Privileged roles the server admits from here with no password."""
    config = connections["default"].settings_dict
    options = config.get("OPTIONS", {})
    host = options.get("host") or config.get("HOST") or None
    port = options.get("port") or config.get("PORT") or None
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT r.rolname FROM pg_roles r WHERE r.rolcanlogin AND (r.rolsuper "
            "OR r.rolbypassrls OR EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid "
            "AND c.relnamespace = current_schema()::regnamespace)) ORDER BY 1 LIMIT 5"
        )
        roles = [name for (name,) in cursor.fetchall()]
    found = []
    for role in roles:
        try:
            probe = psycopg.connect(
                dbname=config["NAME"], host=host, port=port, user=role, password="",
                connect_timeout=2,
            )  # fmt: skip
        except psycopg.Error:
            continue
        probe.close()
        found.append(f"the server admits {role} from this process without a password")
    return found
