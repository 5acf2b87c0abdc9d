"""Database objects declared as Meta.constraints, so `makemigrations` emits them: composite
foreign keys and row-level security policies.

Both are created after the table (deferred SQL), because they reference unique keys that
Django creates inline in CREATE TABLE, possibly of the same table.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import BaseConstraint

TENANT_SETTING = "app.tenant_id"


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
        return (
            f"ALTER TABLE {p['table']} ADD CONSTRAINT {p['name']} FOREIGN KEY ({p['columns']}) "
            f"REFERENCES {p['target']} ({p['target_columns']}) DEFERRABLE INITIALLY DEFERRED"
        )

    def remove_sql(self, model, schema_editor):
        p = self._parts(model, schema_editor)
        return f"ALTER TABLE {p['table']} DROP CONSTRAINT IF EXISTS {p['name']}"

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs["fields"] = list(self.fields)
        return "tenants.constraints.CompositeForeignKey", args, kwargs


def isolation_predicate(*, column: str = "tenant_id") -> str:
    """The policy test: stays on the (tenant_id, ...) indexes (an InitPlan, evaluated once per
    statement) and is false both for an unset (NULL) and an emptied ('') setting."""
    return f"{column} = (SELECT NULLIF(current_setting('{TENANT_SETTING}', true), '')::bigint)"


def breakglass_predicate() -> str:
    """Rows are visible to the break-glass role only in a transaction that wrote an
    `unscoped` audit event (tenants.context.unscoped writes it first)."""
    return (
        "(SELECT EXISTS (SELECT 1 FROM tenants_auditevent a "
        "WHERE a.txid = txid_current() AND a.action = 'unscoped'))"
    )


class RowLevelSecurity(_DeferredConstraint):
    """ENABLE + FORCE row level security with an isolation policy (USING and WITH CHECK) for
    every role and a break-glass policy for the break-glass role."""

    def _statements(self, model, schema_editor):
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        isolation = quote(f"{self.name}_isolation")
        breakglass = quote(f"{self.name}_breakglass")
        role = quote(settings.TENANCY_BREAKGLASS_ROLE)
        check = isolation_predicate()
        glass = breakglass_predicate()
        return [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY {isolation} ON {table} USING ({check}) WITH CHECK ({check})",
            f"CREATE POLICY {breakglass} ON {table} TO {role} USING ({glass}) WITH CHECK ({glass})",
        ]

    def create_sql(self, model, schema_editor):
        return "; ".join(self._statements(model, schema_editor))

    def remove_sql(self, model, schema_editor):
        quote = schema_editor.quote_name
        table = quote(model._meta.db_table)
        return "; ".join(
            [
                f"DROP POLICY IF EXISTS {quote(self.name + '_isolation')} ON {table}",
                f"DROP POLICY IF EXISTS {quote(self.name + '_breakglass')} ON {table}",
                f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
                f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
            ]
        )

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return "tenants.constraints.RowLevelSecurity", args, kwargs
