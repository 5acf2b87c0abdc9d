"""`tenants distribute`: place every table on a Citus coordinator as tenants.citus.placement says.

Idempotent: a table already placed is left alone, a key already dropped is not looked for, and
a second run reports nothing to do. Each table is placed in its own transaction: its policies
are dropped (the table stays closed meanwhile: RLS is forced and no policy admits a row), the
table is distributed or replicated, and the policies are created again in the form Citus takes
(tenants.constraints.RowSecurity chooses it). Runs as the owner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.apps import apps
from django.db import connections, transaction

from tenants.citus.placement import (
    DISTRIBUTED,
    GRANT_TABLE,
    REFERENCE,
    DroppedKey,
    Placement,
    keys_to_drop,
    table_plan,
)
from tenants.constraints import CompositeForeignKey, RowSecurity
from tenants.db import wall
from tenants.exceptions import LifecycleError
from tenants.lifecycle.progress import Progress, no_progress

# Anyone may call these Citus functions by default, and each runs SQL on the workers in a
# session whose application_name the caller may set: that would let SQL injected into the app
# claim another backend's global pid on a worker (docs/citus.md, tenants.db.wall.scope_id).
RUN_ON_NODES = (
    "run_command_on_workers(text, boolean)",
    "run_command_on_all_nodes(text, boolean, boolean)",
    "run_command_on_coordinator(text, boolean)",
    "run_command_on_placements(regclass, text, boolean)",
    "run_command_on_shards(regclass, text, boolean)",
    "run_command_on_colocated_placements(regclass, regclass, text, boolean)",
    "master_run_on_worker(text[], integer[], text[], boolean)",
)


@dataclass
class DistributeSummary:
    placements: list[Placement]
    placed: list[str] = field(default_factory=list)  # tables placed by this run
    dropped_keys: list[DroppedKey] = field(default_factory=list)  # by this run
    revoked: list[str] = field(default_factory=list)  # functions closed to PUBLIC by this run

    def as_dict(self) -> dict:
        return asdict(self)


def citus_placements(cursor) -> dict[str, str]:
    """Tables Citus already knows: table -> DISTRIBUTED or REFERENCE (others: coordinator)."""
    cursor.execute(
        "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition "
        "WHERE partmethod = 'h' OR (partmethod = 'n' AND repmodel = 't')"
    )
    return {t: DISTRIBUTED if m == "h" else REFERENCE for t, m in cursor.fetchall()}


def schema_tables(cursor) -> list[str]:
    cursor.execute(
        "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind IN ('r', 'p') "
        "AND c.relnamespace = current_schema()::regnamespace ORDER BY 1"
    )
    return [name for (name,) in cursor.fetchall()]


def foreign_keys(cursor) -> list[tuple[str, str, str]]:
    """(table, constraint, referenced table) of the schema's and the private schema's keys."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, confrelid::regclass::text FROM pg_constraint "
        "WHERE contype = 'f' AND connamespace IN (current_schema()::regnamespace, "
        "to_regnamespace('ameide_private')) ORDER BY 1, 2"
    )
    return cursor.fetchall()


def citus_installed(*, using: str) -> bool:
    """Whether the database has the Citus extension (then `migrate` places the tables)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        return cursor.fetchone() is not None


def require_coordinator(cursor) -> None:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
    if cursor.fetchone() is None:
        raise LifecycleError("This database has no Citus extension (CREATE EXTENSION citus).")
    cursor.execute("SELECT citus_is_coordinator()")
    if not cursor.fetchone()[0]:
        raise LifecycleError("This is not the coordinator (citus_set_coordinator_host).")
    cursor.execute("SELECT count(*) FROM citus_get_active_worker_nodes()")
    if cursor.fetchone()[0] == 0:
        raise LifecycleError("The coordinator has no active workers (citus_add_node).")


def row_security(table: str) -> list[tuple[type, RowSecurity]]:
    return [
        (model, constraint)
        for model in apps.get_models()
        if model._meta.db_table == table
        for constraint in model._meta.constraints
        if isinstance(constraint, RowSecurity)
    ]


def _keys_into_reference_tables(cursor, *, plan: list[Placement], placed: dict[str, str]):
    """Keys from tables still to distribute to tables still to replicate: Citus would turn
    the referencing tables into coordinator tables when the target is replicated first, and
    cannot distribute them while the target is local. They are restored by _restore_keys."""
    kind = {p.table: p.kind for p in plan}
    return [
        (table, name)
        for table, name, target in foreign_keys(cursor)
        if kind.get(table) in (DISTRIBUTED, REFERENCE)
        and table not in placed
        and kind.get(target) == REFERENCE
        and target not in placed
    ]


def _restore_keys(*, using: str, table: str, plan: list[Placement]) -> None:
    """The model's database foreign keys into reference tables, as Django creates them, where
    they are missing (set aside above, or by a run cut off half-way)."""
    connection = connections[using]
    reference = {p.table for p in plan if p.kind == REFERENCE}
    models = [m for m in apps.get_models() if m._meta.db_table == table]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a "
            "ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1",
            [table],
        )
        present = {column for (column,) in cursor.fetchall()}
    for model in models:
        for key in model._meta.local_fields:
            if not (key.is_relation and key.many_to_one and key.db_constraint):
                continue
            if key.related_model._meta.db_table not in reference or key.column in present:
                continue
            with connection.schema_editor() as editor:
                editor.execute(editor._create_fk_sql(model, key, "_fk_%(to_table)s_%(to_column)s"))


def _restore_composite_keys(*, using: str, table: str) -> None:
    """The model's composite keys (tenant_id, x_id) -> (tenant_id, id) where missing: a new
    tenant table's key to a distributed table waits, in its migration, for the table to be
    distributed (tenants.constraints.CompositeForeignKey)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [table],
        )
        present = {name for (name,) in cursor.fetchall()}
    for model in apps.get_models():
        if model._meta.db_table != table:
            continue
        for constraint in model._meta.constraints:
            if isinstance(constraint, CompositeForeignKey) and constraint.name not in present:
                with connection.schema_editor() as editor:
                    editor.execute(constraint.create_sql(model, editor))


def _place(*, using: str, placement: Placement) -> None:
    connection = connections[using]
    quote = connection.ops.quote_name
    if placement.table == GRANT_TABLE:
        # Earlier versions left an empty plain copy of the grants on each worker, where
        # Citus would now create the reference table's own.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nodename, nodeport, result FROM run_command_on_workers(%s) "
                "WHERE NOT success",
                [f"DROP TABLE IF EXISTS {GRANT_TABLE}"],
            )
            failed = cursor.fetchall()
        if failed:
            raise LifecycleError(f"could not drop the workers' old grant tables: {failed}")
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # Triggers on the table (the admission signal) go to the shards (docs/citus.md).
        cursor.execute("SET LOCAL citus.enable_unsafe_triggers = on")
        # DDL after distributing, with keys to reference tables, in one transaction.
        cursor.execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
        cursor.execute(
            "SELECT policyname FROM pg_policies WHERE schemaname || '.' || tablename = %s "
            "OR (tablename = %s AND schemaname = current_schema())",
            [placement.table, placement.table],
        )
        for (policy,) in cursor.fetchall():
            cursor.execute(f"DROP POLICY {quote(policy)} ON {placement.table}")
        if placement.kind == DISTRIBUTED:
            cursor.execute(
                "SELECT create_distributed_table(%s, 'tenant_id', colocate_with => %s)",
                [placement.table, placement.colocate_with or "default"],
            )
        else:
            cursor.execute("SELECT create_reference_table(%s)", [placement.table])
    # In a transaction of its own: the copy into the shards leaves deferred key checks
    # pending on the workers, and Citus refuses DDL on a table with pending trigger events.
    # Meanwhile the table has no policy, which under FORCE admits no row.
    _create_policies(using=using, table=placement.table)


def _create_policies(*, using: str, table: str) -> None:
    """The table's policies as the code declares them, in the form Citus takes there."""
    connection = connections[using]
    for model, constraint in row_security(table):
        with connection.schema_editor() as editor:
            editor.execute(constraint.create_sql(model, editor))


def tenants_distribute(*, using: str, progress: Progress = no_progress) -> DistributeSummary:
    """Place every table as tenants.citus.placement says; see the module's docstring."""
    connection = connections[using]
    with connection.cursor() as cursor:
        require_coordinator(cursor)
        plan = table_plan(tables=schema_tables(cursor))
        placed = citus_placements(cursor)
        dropped = keys_to_drop(plan=plan, keys=foreign_keys(cursor))
    summary = DistributeSummary(placements=plan)
    for key in progress(dropped, total=len(dropped), desc="drop keys"):
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER TABLE {key.table} DROP CONSTRAINT {connection.ops.quote_name(key.name)}"
            )
        summary.dropped_keys.append(key)
    todo = [p for p in plan if p.kind in (DISTRIBUTED, REFERENCE) and p.table not in placed]
    # Reference tables first: distributed tables' keys point at them. Keys into reference
    # tables are set aside meanwhile and restored once every table is in place.
    todo.sort(key=lambda p: p.kind != REFERENCE)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for table, name in _keys_into_reference_tables(cursor, plan=plan, placed=placed):
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {connection.ops.quote_name(name)}")
    for placement in progress(todo, total=len(todo), desc="place tables"):
        _place(using=using, placement=placement)
        summary.placed.append(placement.table)
    # Repairs a run cut off half-way, and is a no-op otherwise: keys, policies, and the
    # coordinator's copy of rows that now live in the shards.
    with connection.cursor() as cursor:
        placed = citus_placements(cursor)
    for placement in plan:
        if placement.table in placed:
            _restore_keys(using=using, table=placement.table, plan=plan)
            _restore_composite_keys(using=using, table=placement.table)
            _create_policies(using=using, table=placement.table)
    with connection.cursor() as cursor:
        for placement in reversed(plan):
            if placement.table in placed:
                cursor.execute(
                    "SELECT truncate_local_data_after_distributing_table(%s)", [placement.table]
                )
    with connection.cursor() as cursor:
        # The key on every worker, before anyone reads there.
        wall.install(cursor, quote=connection.ops.quote_name, workers=True)
        for function in RUN_ON_NODES:
            cursor.execute(
                "SELECT has_function_privilege('public', %s::regprocedure, 'EXECUTE')",
                [function],
            )
            if cursor.fetchone()[0]:
                cursor.execute(f"REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC")
                summary.revoked.append(function)
    return summary
