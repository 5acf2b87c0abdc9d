"""Database objects declared as Meta.constraints, so `makemigrations` emits them: the tenant
primary key, composite foreign keys and the row-level security policies of tenant and global
tables.

All are created after the table (deferred SQL), because they reference keys that Django
creates inline in CREATE TABLE, possibly of the same table.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import BaseConstraint

from tenants.db import wall
from tenants.placement.paths import HOME_SCHEMA, pinned_schema


class _DeferredConstraint(BaseConstraint):
    """A constraint whose DDL runs after all tables of the migration exist."""

    def constraint_sql(self, model, schema_editor):
        schema_editor.deferred_sql.append(self.create_sql(model, schema_editor))
        return None

    def validate(self, model, instance, exclude=None, using="default"):
        return  # enforced by PostgreSQL; nothing to check in Python

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.deconstruct() == other.deconstruct()

    def __hash__(self) -> int:
        return hash(self.name)


class TenantPrimaryKey(_DeferredConstraint):
    """PRIMARY KEY (tenant_id, id) in the database, while Django keeps `id` as the model's pk.

    Citus distributes a table by `tenant_id` only if every primary key and unique constraint
    includes it, so the key Django creates on `id` alone is replaced by this one (and the
    composite foreign keys reference it). One schema serves plain PostgreSQL and Citus. `id`
    stays unique across tenants as the identity sequence hands it out; `tenants import` keeps
    archived ids only where no tenant uses them.

    Creating it replaces whatever primary key the table has and a UNIQUE (tenant_id, id) of the
    same name (installs before this key), re-creating the foreign keys that referenced either;
    it does nothing where the key is already in place. A foreign key to `id` alone cannot be
    re-created, and says so (tenants.checks refuses such keys, tenants.E010).
    """

    def _swap(self, model, schema_editor, *, columns: str, unique: str | None) -> str:
        """One statement (a DO block) that makes `columns` the primary key named `self.name`
        (or the pkey, when `unique` keeps `self.name` as a UNIQUE), keeping the foreign keys
        that referenced the table. No '%' in it: Django passes some DDL through psycopg's
        placeholder parser and some not."""
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        name = self.name.replace("'", "''")
        pk_name = name if unique is None else f"{model._meta.db_table}_pkey"
        add_unique = (
            ""
            if unique is None
            else f"ALTER TABLE {table} ADD CONSTRAINT {quote(self.name)} UNIQUE ({unique});"
        )
        return f"""DO $tenant_pk$
DECLARE
  target regclass := '{table}'::regclass;
  current_pk text;
  fk record;
  kept text[] := '{{}}';
  i int;
BEGIN
  SELECT pg_get_constraintdef(c.oid) INTO current_pk FROM pg_constraint c
    WHERE c.conrelid = target AND c.contype = 'p' AND c.conname = '{pk_name}';
  IF current_pk = 'PRIMARY KEY ({columns})' THEN RETURN; END IF;
  -- Foreign keys lean on the unique index they reference: set them aside while it changes.
  FOR fk IN SELECT c.conrelid::regclass AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = target ORDER BY c.oid LOOP
    kept := kept || ARRAY[fk.tbl::text, fk.conname::text, fk.def];
    EXECUTE 'ALTER TABLE ' || fk.tbl || ' DROP CONSTRAINT ' || quote_ident(fk.conname);
  END LOOP;
  FOR fk IN SELECT c.conname FROM pg_constraint c WHERE c.conrelid = target
      AND (c.contype = 'p' OR (c.contype = 'u' AND c.conname = '{name}')) LOOP
    EXECUTE 'ALTER TABLE ' || target || ' DROP CONSTRAINT ' || quote_ident(fk.conname);
  END LOOP;
  EXECUTE 'ALTER TABLE ' || target || ' ADD CONSTRAINT ' || quote_ident('{pk_name}')
    || ' PRIMARY KEY ({columns})';
  {add_unique}
  FOR i IN 1 .. coalesce(array_length(kept, 1), 0) / 3 LOOP
    EXECUTE 'ALTER TABLE ' || kept[3 * i - 2] || ' ADD CONSTRAINT ' || quote_ident(kept[3 * i - 1])
      || ' ' || kept[3 * i];
  END LOOP;
END $tenant_pk$"""

    def create_sql(self, model, schema_editor):
        tenant = model._meta.get_field("tenant").column
        pk = model._meta.pk.column
        return self._swap(model, schema_editor, columns=f"{tenant}, {pk}", unique=None)

    def remove_sql(self, model, schema_editor):
        # Back to Django's own key on `id`, with the UNIQUE (tenant_id, id) that the composite
        # foreign keys referenced before.
        tenant = model._meta.get_field("tenant").column
        pk = model._meta.pk.column
        return self._swap(model, schema_editor, columns=pk, unique=f"{tenant}, {pk}")

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return "tenants.constraints.TenantPrimaryKey", args, kwargs


class CompositeForeignKey(_DeferredConstraint):
    """FOREIGN KEY (tenant_id, x_id) REFERENCES target (tenant_id, id): no row can point at a
    row of another tenant, whatever SQL wrote it."""

    def __init__(self, *, fields, name, **kwargs):
        if len(fields) != 2 or fields[0] != "tenant":
            raise ValueError("CompositeForeignKey fields must be ['tenant', '<foreign key>'].")
        self.fields = tuple(fields)
        super().__init__(name=name, **kwargs)

    def _parts(self, model, schema_editor):
        quote = schema_editor.quote_name
        tenant = model._meta.get_field(self.fields[0])
        fk = model._meta.get_field(self.fields[1])
        target = fk.remote_field.model._meta
        target_key = target.get_field(fk.remote_field.field_name)
        return {
            "table": quote(model._meta.db_table),
            "name": quote(self.name),
            "columns": f"{quote(tenant.column)}, {quote(fk.column)}",
            "target": quote(target.db_table),
            "target_columns": f"{quote('tenant_id')}, {quote(target_key.column)}",
        }

    def create_sql(self, model, schema_editor):
        p = self._parts(model, schema_editor)
        add = (
            f"ALTER TABLE {p['table']} ADD CONSTRAINT {p['name']} FOREIGN KEY ({p['columns']}) "
            f"REFERENCES {p['target']} ({p['target_columns']}) DEFERRABLE INITIALLY DEFERRED"
        )
        # On Citus a table that is not distributed cannot reference a distributed one: the
        # key of a new tenant table to a distributed table waits for `tenants distribute`,
        # which `migrate` runs after the migrations, distributes the table and then adds the
        # key (tenants.citus.distribute). Citus's catalog is read by EXECUTE, so the block
        # runs without Citus too.
        distributed = (
            "EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition "
            "WHERE logicalrelid = '{}'::regclass AND partmethod = 'h')"
        )
        waits = f"SELECT {distributed.format(p['target'])} AND NOT {distributed.format(p['table'])}"
        return (
            "DO $wall_do$ DECLARE waits boolean := false; BEGIN\n"
            "IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN\n"
            f"EXECUTE $wall_sql${waits}$wall_sql$ INTO waits;\nEND IF;\n"
            f"IF NOT waits THEN\nEXECUTE $wall_sql${add}$wall_sql$;\nEND IF;\n"
            "END $wall_do$"
        )

    def remove_sql(self, model, schema_editor):
        p = self._parts(model, schema_editor)
        return f"ALTER TABLE {p['table']} DROP CONSTRAINT IF EXISTS {p['name']}"

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["fields"] = list(self.fields)
        return "tenants.constraints.CompositeForeignKey", args, kwargs


class RowSecurity(_DeferredConstraint):
    """ENABLE + FORCE row level security, one policy for every role and one for break-glass.

    The policies test the signed scope through an InitPlan, except on a table that Citus
    distributes or replicates (docs/citus.md): Citus refuses subqueries in its policies, so
    there the same predicate calls the verifier inline. Where Citus is installed a global
    table may also say what it admits differently (GlobalRowSecurity.under_tenant_on_citus).
    The choice is made in the database each time the policies are created (every migrate),
    so one migration history serves both.
    """

    def using_predicate(
        self, model, schema_editor, *, inline: bool = False, citus: bool = False
    ) -> str:
        raise NotImplementedError

    def placement_policy(self, model, schema_editor, *, citus: bool) -> list[str]:
        """Statements for the table's placement policy, if it has one (RowLevelSecurity)."""
        return []

    def _policies(self, model, schema_editor, *, inline: bool, citus: bool) -> list[str]:
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        isolation = quote(f"{self.name}_isolation")
        breakglass = quote(f"{self.name}_breakglass")
        role = quote(settings.TENANCY_BREAKGLASS_ROLE)
        check = self.using_predicate(model, schema_editor, inline=inline, citus=citus)
        glass = wall.breakglass_predicate(inline=inline)
        # Where Citus is installed no role is switched to for break-glass: Citus opens its
        # worker connections as the statement's role (the break-glass role cannot log in) and
        # refuses placements changed in the transaction by another role. There the signed
        # scope naming an open grant is the whole condition, for any role (docs/citus.md).
        to = "" if citus else f" TO {role}"
        return [
            f"DROP POLICY IF EXISTS {isolation} ON {table}",
            f"DROP POLICY IF EXISTS {breakglass} ON {table}",
            f"CREATE POLICY {isolation} ON {table} USING ({check}) WITH CHECK ({check})",
            f"CREATE POLICY {breakglass} ON {table}{to} USING ({glass}) WITH CHECK ({glass})",
            *self.placement_policy(model, schema_editor, citus=citus),
        ]

    def create_sql(self, model, schema_editor):
        table = schema_editor.quote_name(model._meta.db_table)
        return wall.as_one_statement_on_citus_or_not(
            [
                # The functions the policies call; idempotent, so the first policy of a fresh
                # database creates them whichever app migrates first.
                *wall.ensure_functions_sql(_schema(schema_editor)),
                f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
                f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            ],
            table=table,
            citus_table=self._policies(model, schema_editor, inline=True, citus=True),
            citus_installed=self._policies(model, schema_editor, inline=False, citus=True),
            otherwise=self._policies(model, schema_editor, inline=False, citus=False),
        )

    def remove_sql(self, model, schema_editor):
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        return wall.as_one_statement(
            [
                f"DROP POLICY IF EXISTS {quote(self.name + '_isolation')} ON {table}",
                f"DROP POLICY IF EXISTS {quote(self.name + '_breakglass')} ON {table}",
                f"DROP POLICY IF EXISTS {wall.PLACEMENT_POLICY} ON {table}",
                f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
                f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
            ]
        )


def shared_placements(model) -> tuple[str, ...]:
    """The placements whose rows a tenant model's shared table holds: the shared tenants', and
    for the membership model the dedicated databases' tenants' too (tenants.placement.router:
    memberships are not placed)."""
    if model._meta.label_lower == settings.TENANCY_MEMBERSHIP_MODEL.lower():
        return ("shared", "database")
    return ("shared",)


def _schema(schema_editor) -> str:
    if pinned_schema(schema_editor.connection.settings_dict) is not None:
        # Migrating a dedicated schema: the wall's functions stay where the global tables are.
        return schema_editor.quote_name(HOME_SCHEMA)
    return schema_editor.quote_name(_current_schema(schema_editor))


def _current_schema(schema_editor) -> str:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return cursor.fetchone()[0]


class RowLevelSecurity(RowSecurity):
    """The policies of a tenant table: rows of the signed tenant only (USING and WITH CHECK)."""

    def using_predicate(
        self, model, schema_editor, *, inline: bool = False, citus: bool = False
    ) -> str:
        return wall.tenant_predicate(inline=inline)

    def placement_policy(self, model, schema_editor, *, citus: bool) -> list[str]:
        """The shared tables' placement policy (tenants.db.wall.placement_check): a tenant
        writes rows into them only while it is placed in them, so a tenant in a dedicated
        schema or database cannot put its own rows there by naming `public.<table>`. The
        membership table holds the memberships of tenants in dedicated databases too (they
        stay in the primary database, tenants.placement.router). Made on every migrate
        (tenants.db.roles.apply_row_security), so every tenant table, a new one too, has it.
        Not where Citus is installed (no dedicated placements there), not in a dedicated
        schema (tenants.placement.schemas makes its own after its migrations) and not in a
        dedicated database (one placement's rows, and no tenant directory to read)."""
        connection = schema_editor.connection
        if (
            pinned_schema(connection.settings_dict) is not None
            or connection.settings_dict.get("PLACEMENT")
            or settings.TENANCY_CITUS
        ):
            return []
        table = schema_editor.quote_name(model._meta.db_table)
        if citus:
            return [f"DROP POLICY IF EXISTS {wall.PLACEMENT_POLICY} ON {table}"]
        return wall.placement_policy_sql(
            table, schema=_current_schema(schema_editor), placements=shared_placements(model)
        )

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return "tenants.constraints.RowLevelSecurity", args, kwargs


class GlobalRowSecurity(RowSecurity):
    """The policies of a global table: all rows in the signed global scope (code that runs with
    no tenant: sign-in, the platform console), and under a tenant only what `under_tenant`
    admits. `under_tenant` is SQL in which `{tenant}` stands for the signed tenant's id and
    `{table}` for this table; "false" hides every row from tenant work. `under_tenant_on_citus`
    replaces it where Citus is installed (a subquery over a tenant table that Citus cannot
    plan there, said through a function instead; docs/citus.md)."""

    def __init__(
        self, *, name, under_tenant: str = "false", under_tenant_on_citus: str = "", **kwargs
    ):
        self.under_tenant = under_tenant
        self.under_tenant_on_citus = under_tenant_on_citus
        super().__init__(name=name, **kwargs)

    def using_predicate(
        self, model, schema_editor, *, inline: bool = False, citus: bool = False
    ) -> str:
        template = (self.under_tenant_on_citus if citus else "") or self.under_tenant
        under = template.format(
            tenant=wall.current_tenant_sql(inline=inline),
            table=schema_editor.quote_name(model._meta.db_table),
        )
        return wall.global_predicate(under, inline=inline)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["under_tenant"] = self.under_tenant
        if self.under_tenant_on_citus:
            kwargs["under_tenant_on_citus"] = self.under_tenant_on_citus
        return "tenants.constraints.GlobalRowSecurity", args, kwargs
