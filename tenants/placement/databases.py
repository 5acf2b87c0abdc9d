"""Dedicated databases: their owner aliases, their migrations, their keys to global rows, their checks.

A dedicated database is named in AMEIDE_DATABASES (ameide.database); its runtime alias is
`placed_<name>`. It holds the placed tenant tables only (tenants.placement.router), with the
same wall as `default`: the runtime and break-glass roles, the scope key, the verifier and the
policies, so each transaction there carries the same signed scope.

Its rows point at global rows in `default` (their tenant, a workflow's owner), where PostgreSQL
cannot follow a foreign key; the application keeps these keys whole instead:

- on write, a key to a global row must name a row that exists there (`check_global_keys`);
- a global row's deletion applies the key's `on_delete` in every dedicated database too
  (`apply_on_delete`), refused (ProtectedError) where the key protects;
- `tenants check` reports keys that name no row, rows of tenants not placed where they are,
  and dedicated databases that lag behind the migrations or cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import environ
from django.apps import apps
from django.core.management import call_command
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models
from django.db.migrations.executor import MigrationExecutor
from django.db.models.signals import pre_delete, pre_save

from ameide.database import dedicated_alias, dedicated_owner_settings
from tenants.context import no_tenant, tenant_context
from tenants.db.roles import ensure_database, ensure_roles
from tenants.exceptions import CrossDatabaseKeyInvalid
from tenants.models import Placement, PlacementMove, Tenant
from tenants.placement.router import is_placed, placement_of_alias


def names() -> list[str]:
    """The dedicated databases this process knows (AMEIDE_DATABASES), in order."""
    return sorted(
        connections.settings[alias]["PLACEMENT"]
        for alias in connections.settings
        if placement_of_alias(alias) and not alias.endswith(OWNER_SUFFIX)
    )


OWNER_SUFFIX = "_owner"


def owner_alias_name(name: str) -> str:
    return f"{dedicated_alias(name)}{OWNER_SUFFIX}"


def register_owner_alias(name: str) -> str:
    """Add the owner alias of dedicated database `name` to this process (idempotent).

    Like tenants.db.owner: for migrate, `tenants setup` and the tests only; a runtime process
    never has it. Its keys to global tables are not created (see the features of the
    dedicated runtime alias, tenants.db.backend).
    """
    alias = owner_alias_name(name)
    if alias not in connections.settings:
        configured = connections.configure_settings(
            {
                "default": {"ENGINE": "unused"},
                alias: dedicated_owner_settings(environ.Env(), name=name),
            }
        )
        connections.settings[alias] = configured[alias]
    connections[alias].features.supports_foreign_keys = False
    return alias


@contextmanager
def owner_alias(name: str) -> Iterator[str]:
    """The owner alias of dedicated database `name` for one block: closed and removed after."""
    present = owner_alias_name(name) in connections.settings
    alias = register_owner_alias(name)
    try:
        yield alias
    finally:
        # Closed either way (an owner's session left open keeps its database busy), unless a
        # caller's transaction is still open on it.
        if not connections[alias].in_atomic_block:
            connections[alias].close()
        if not present:
            del connections[alias]
            del connections.settings[alias]


def set_up(*, name: str) -> list[str]:
    """`tenants setup` for dedicated database `name`: the database and the roles there."""
    with owner_alias(name) as alias:
        return [
            f"{name}: {line}"
            for line in (*ensure_database(using=alias), *ensure_roles(using=alias))
        ]


def migrate_all(*, stdout, verbosity: int = 1) -> None:
    """`manage.py migrate`'s second part: every dedicated database to the same state.

    One database after the other, each as Django's migrate (each migration in its own
    transaction): after a failure, running it again finishes the work.
    """
    # The stream itself: a command's OutputWrapper wrapped again would end "Applying x..."
    # with a line break before its " OK".
    stream = getattr(stdout, "_out", stdout)
    all_names = names()
    for number, name in enumerate(all_names, start=1):
        stream.write(f"Dedicated database {name} ({number}/{len(all_names)}):\n")
        with owner_alias(name) as alias:
            migrate_one(alias, stdout=stream, verbosity=verbosity)


def migrate_one(alias: str, *, stdout, verbosity: int = 1) -> None:
    """One dedicated database (its owner alias) to the code's migrations, as Django's migrate."""
    call_command(
        DjangoMigrate(),
        database=alias,
        interactive=False,
        verbosity=verbosity,
        stdout=stdout,
    )


def lag_of(alias: str) -> list[str]:
    """The migrations `alias` still lacks (as app.name)."""
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def _global_keys(model) -> list[models.ForeignKey]:
    """A placed model's keys to global rows in `default`, other than its tenant."""
    return [
        field
        for field in model._meta.concrete_fields
        if field.many_to_one and field.name != "tenant" and not is_placed(field.related_model)
    ]


def placed_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if is_placed(m)]


def check_global_keys(sender, instance, using, **kwargs) -> None:
    """pre_save of placed models: a row written to a dedicated database names global rows
    that exist (what a foreign key checks in `default`)."""
    if not placement_of_alias(using):
        return
    for field in _global_keys(sender):
        value = getattr(instance, field.attname)
        if value is None:
            continue
        target = field.related_model
        with no_tenant():  # existence only, as TenantModel.clean_fields checks it
            exists = (
                target._base_manager.using(DEFAULT_DB_ALIAS)
                .filter(**{field.target_field.attname: value})
                .exists()
            )
        if not exists:
            raise CrossDatabaseKeyInvalid(
                f"{sender.__name__}.{field.name} = {value!r}: no such {target.__name__}"
            )


def database_tenants() -> list[Tenant]:
    """Tenants placed in a dedicated database (read from `default`)."""
    with no_tenant():
        return list(Tenant.objects.filter(placement=Placement.DATABASE).order_by("id"))


def apply_on_delete(sender, instance, using, **kwargs) -> None:
    """pre_delete of global models: their rows' referrers in dedicated databases get the key's
    `on_delete` too (SET_NULL, SET_DEFAULT, CASCADE), or the deletion is refused (PROTECT,
    RESTRICT, DO_NOTHING: nothing to keep the key whole there)."""
    if using != DEFAULT_DB_ALIAS:
        return
    referrers = [
        (model, field)
        for model in placed_models()
        for field in _global_keys(model)
        if field.related_model is sender
    ]
    if not referrers:
        return
    for tenant in database_tenants():
        with tenant_context(tenant):
            for model, field in referrers:
                rows = model.objects.filter(**{field.attname: instance.pk})
                action = field.remote_field.on_delete
                if action is models.SET_NULL:
                    rows.update(**{field.attname: None})
                elif action is models.SET_DEFAULT:
                    rows.update(**{field.attname: field.get_default()})
                elif action is models.CASCADE:
                    for row in rows:
                        row.delete()
                elif rows.exists():
                    raise models.ProtectedError(
                        f"{sender.__name__} {instance.pk} is referred to by {model.__name__} "
                        f"rows of tenant {tenant.slug} in dedicated database "
                        f"{tenant.placement_name}",
                        set(rows),
                    )


def connect_signals() -> None:
    """At start-up (tenants.apps): the write check and the deletion rule above."""
    for model in placed_models():
        keys = _global_keys(model)
        if keys:
            pre_save.connect(
                check_global_keys, sender=model, dispatch_uid=f"placement.{model._meta.label}"
            )
        for field in keys:
            pre_delete.connect(
                apply_on_delete,
                sender=field.related_model,
                dispatch_uid=f"placement.delete.{field.related_model._meta.label}",
            )


def moving_tenants() -> dict[int, set[str]]:
    """Tenants with an unfinished move: the dedicated databases it reads or writes. Their
    rows are on both sides until its clean-up (`tenants check` reports the move itself)."""
    with no_tenant():
        moves = list(PlacementMove.objects.filter(finished_at__isnull=True))
    return {
        m.tenant_id: {
            name
            for kind, name in ((m.source_kind, m.source_name), (m.target_kind, m.target_name))
            if kind == Placement.DATABASE
        }
        for m in moves
    }


def findings(*, using_owner: bool) -> tuple[list[str], list[str]]:
    """`tenants check`'s lines on placement: (failures, warnings)."""
    failures: list[str] = []
    warnings: list[str] = []
    known = set(names())
    tenants = database_tenants()
    moving = moving_tenants()
    for tenant in tenants:
        if tenant.placement_name not in known:
            failures.append(
                f"tenant {tenant.slug} is placed in dedicated database {tenant.placement_name!r}, "
                "which AMEIDE_DATABASES does not name"
            )
    for name in sorted(known):
        alias = dedicated_alias(name)
        try:
            if using_owner:
                with owner_alias(name) as owner:
                    lag = lag_of(owner)
                    failures.extend(_wall_findings(owner, name=name))
                    failures.extend(
                        _stray_rows(
                            owner,
                            name=name,
                            tenants=tenants,
                            moving={t for t, names in moving.items() if name in names},
                        )
                    )
            else:
                lag = lag_of(alias)
                failures.extend(_wall_findings(alias, name=name))
                warnings.append(
                    f"dedicated database {name}: rows of other tenants not looked for "
                    "(needs the owner's address, AMEIDE_DATABASES_OWNER)"
                )
        except DatabaseError as exc:
            failures.append(f"dedicated database {name} is unreachable: {str(exc).strip()[:200]}")
            continue
        if lag:
            failures.append(
                f"dedicated database {name} lags: {len(lag)} migration(s) not applied, first "
                f"{lag[0]} (run migrate)"
            )
    for tenant in tenants:
        if tenant.placement_name in known:
            failures.extend(_tenant_findings(tenant, moving=tenant.pk in moving))
    return failures, warnings


def _wall_findings(alias: str, *, name: str) -> list[str]:
    """The wall in dedicated database `name`: the verifier, and each placed table's row level
    security (enabled, forced, its isolation policy), read from the catalog."""
    lines = []
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('ameide_private.scope_id(text)') IS NOT NULL")
        if not cursor.fetchone()[0]:
            lines.append(f"dedicated database {name}: the scope verifier is missing (run migrate)")
        for model in placed_models():
            table = model._meta.db_table
            cursor.execute(
                "SELECT c.relrowsecurity, c.relforcerowsecurity, EXISTS (SELECT 1 FROM "
                "pg_policies p WHERE p.schemaname = current_schema() AND p.tablename = %s "
                "AND p.policyname = %s) FROM pg_class c WHERE c.oid = to_regclass(%s)",
                [table, f"{table}_rls_isolation", table],
            )
            row = cursor.fetchone()
            if row is None:
                lines.append(f"dedicated database {name}: {table} is missing (run migrate)")
            elif not all(row):
                lines.append(
                    f"dedicated database {name}: {table} row level security is not enabled, "
                    "forced and isolating (run migrate)"
                )
    return lines


def _stray_rows(owner: str, *, name: str, tenants: list[Tenant], moving: set[int]) -> list[str]:
    """Rows in dedicated database `name` of tenants not placed there, nor moving to or from it
    (read as its owner)."""
    placed_here = {t.pk for t in tenants if t.placement_name == name} | moving
    lines = []
    with connections[owner].cursor() as cursor:
        for model in placed_models():
            table = connections[owner].ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT DISTINCT tenant_id FROM {table}")  # noqa: S608 - a model's table
            stray = sorted({row[0] for row in cursor.fetchall()} - placed_here)
            if stray:
                lines.append(
                    f"dedicated database {name}: {model._meta.db_table} has rows of tenants "
                    f"{stray} not placed there"
                )
    return lines


def _tenant_findings(tenant: Tenant, *, moving: bool) -> list[str]:
    """A database-placed tenant: no rows left in the shared tables (unless it is moving), and
    every key to a global row naming a row that exists."""
    lines = []
    with tenant_context(tenant):
        for model in placed_models():
            if not moving and model.objects.using(DEFAULT_DB_ALIAS).exists():
                lines.append(
                    f"tenant {tenant.slug} is placed in dedicated database "
                    f"{tenant.placement_name} but has rows in the shared {model._meta.db_table}"
                )
            for field in _global_keys(model):
                ids = set(
                    model.objects.exclude(**{field.attname: None})
                    .values_list(field.attname, flat=True)
                    .distinct()
                )
                if not ids:
                    continue
                with no_tenant():
                    found = set(
                        field.related_model._base_manager.using(DEFAULT_DB_ALIAS)
                        .filter(**{f"{field.target_field.attname}__in": ids})
                        .values_list(field.target_field.attname, flat=True)
                    )
                missing = sorted(ids - found)
                if missing:
                    lines.append(
                        f"tenant {tenant.slug}: {model._meta.db_table}.{field.column} names "
                        f"{field.related_model._meta.db_table} rows that do not exist: "
                        f"{missing[:10]}"
                    )
    return lines
