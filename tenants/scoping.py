"""Where the ORM enforces the tenant: the manager, the queryset, the compile-time filter and joins.

The filter `tenant_id = <current tenant>` is attached when a queryset is built, but its value
is read from the context only when the SQL is compiled. A queryset built at import time (a
class-level `queryset=`, a serializer field, a filter set) therefore runs for the tenant of the
request that evaluates it, and raises TenantNotSet when there is none.
"""

from __future__ import annotations

from django.core.exceptions import FullResultSet
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models.expressions import Expression
from django.db.models.lookups import Exact
from django.db.models.sql.where import AND, WhereNode

from tenants.context import current_scope, current_tenant
from tenants.exceptions import CrossTenantWrite, TenantNotSet, UnscopedAcrossPlacements

# Inside unscoped() the database resolves tenant tables to the shared ones (the home schema,
# tenants.placement.paths): rows of tenants in dedicated schemas are not among them. So the ORM
# refuses a cross-tenant read while any tenant has a dedicated schema, and a write for such a
# tenant, instead of answering for the shared tables only (docs/placement.md).
_DEDICATED = "SELECT count(*) FROM tenants_tenant WHERE placement <> 'shared'"
_PLACEMENT_OF = "SELECT placement FROM tenants_tenant WHERE id = %s"


def refuse_uncovered_read(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_DEDICATED)
        dedicated = cursor.fetchone()[0]
    if dedicated:
        raise UnscopedAcrossPlacements(
            f"unscoped() reads the shared tables only, and {dedicated} tenant(s) have a "
            "dedicated schema or database: read each of those in its own tenant_context() instead."
        )


def refuse_uncovered_write(instance: models.Model) -> None:
    # The tenant directory is in the primary database, whatever the row's placement.
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute(_PLACEMENT_OF, [instance.tenant_id])
        row = cursor.fetchone()
    if row is not None and row[0] != "shared":
        raise UnscopedAcrossPlacements(
            f"unscoped() writes the shared tables only, and tenant {instance.tenant_id} has a "
            "dedicated schema or database: write its rows in its tenant_context() instead."
        )


class CurrentTenantId(Expression):
    """SQL placeholder for the current tenant's id, resolved at compile time."""

    def __init__(self) -> None:
        super().__init__(output_field=models.BigIntegerField())

    def as_sql(self, compiler, connection):
        scope = current_scope()
        if scope.tenant is not None:
            return "%s", [scope.tenant.pk]
        if scope.is_bypass:
            refuse_uncovered_read(connection)
            # Inside unscoped(): the condition disappears (WhereNode treats it as "all rows").
            raise FullResultSet
        raise TenantNotSet()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CurrentTenantId)

    def __hash__(self) -> int:
        return hash(CurrentTenantId)


def _writing_tenant_id() -> int | None:
    """The tenant id writes must carry: the context's, None under unscoped(), else refuse."""
    scope = current_scope()
    if scope.tenant is not None:
        return scope.tenant.pk
    if scope.is_bypass:
        return None
    raise TenantNotSet()


def claim_row_for_current_tenant(instance: models.Model) -> None:
    """Give a new row the current tenant; refuse a row of, or a move to, another tenant."""
    tenant_id = _writing_tenant_id()
    if tenant_id is None:  # unscoped(): the caller must say which tenant the row belongs to
        if instance.tenant_id is None:
            raise CrossTenantWrite(
                f"{type(instance).__name__} written inside unscoped() needs an explicit tenant."
            )
        refuse_uncovered_write(instance)
        return
    if instance.tenant_id is None:
        instance.tenant_id = tenant_id
    elif instance.tenant_id != tenant_id:
        raise CrossTenantWrite(
            f"Refusing to write a {type(instance).__name__} of tenant {instance.tenant_id} "
            f"while the current tenant is {tenant_id}."
        )
    loaded = getattr(instance, "_loaded_tenant_id", None)
    if loaded is not None and loaded != instance.tenant_id:
        raise CrossTenantWrite(f"A {type(instance).__name__} cannot move to another tenant.")


def check_row_of_current_tenant(instance: models.Model) -> None:
    """Before an instance method writes (delete): the row is the current tenant's, or the block
    is unscoped(); fails closed with no tenant, like the manager."""
    tenant_id = _writing_tenant_id()
    if tenant_id is not None and instance.tenant_id != tenant_id:
        raise CrossTenantWrite(
            f"Refusing to delete a {type(instance).__name__} of tenant {instance.tenant_id} "
            f"while the current tenant is {tenant_id}."
        )


class TenantQuerySet(models.QuerySet):
    """A queryset whose writes take the tenant from the context and never change it."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            claim_row_for_current_tenant(obj)
        return super().bulk_create(objs, *args, **kwargs)

    async def abulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for obj in objs:
            claim_row_for_current_tenant(obj)
        return await super().abulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        if {"tenant", "tenant_id"} & set(fields):
            raise CrossTenantWrite("bulk_update() cannot change a row's tenant.")
        objs = list(objs)
        for obj in objs:
            claim_row_for_current_tenant(obj)
        return super().bulk_update(objs, fields, *args, **kwargs)

    def update(self, **kwargs):
        if {"tenant", "tenant_id"} & set(kwargs):
            raise CrossTenantWrite("update() cannot change a row's tenant.")
        # Fail before Django's update() marks the caller's transaction for rollback.
        _writing_tenant_id()
        return super().update(**kwargs)

    def delete(self):
        _writing_tenant_id()
        return super().delete()

    delete.alters_data = True
    delete.queryset_only = True

    update.alters_data = True


_CONDITIONS: dict[tuple[type[models.Model], str], Exact] = {}


def _tenant_condition(model: type[models.Model], alias: str) -> Exact:
    """`<alias>.tenant_id = CurrentTenantId()`; immutable, so shared by every queryset."""
    key = (model, alias)
    condition = _CONDITIONS.get(key)
    if condition is None:
        column = model._meta.get_field("tenant").get_col(alias)
        condition = _CONDITIONS[key] = Exact(column, CurrentTenantId())
    return condition


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """Default and base manager of every TenantModel: every queryset starts scoped."""

    # Related managers and forward foreign keys go through this manager too.
    use_for_related_fields = True

    def get_queryset(self) -> TenantQuerySet:
        queryset = super().get_queryset()
        query = queryset.query
        # The same condition as .filter(tenant_id=CurrentTenantId()), built once per model
        # and added to the fresh query directly: filter() would run Django's lookup machinery
        # on every queryset (a sixth of a primary-key read). The value is still read from the
        # context when the SQL is compiled.
        alias = query.get_initial_alias()
        query.where.add(_tenant_condition(self.model, alias), AND)
        return queryset

    def raw(self, raw_query, params=(), translations=None, using=None):
        # Raw SQL is out of the ORM's reach: demand a tenant (RLS filters the rows).
        if not current_scope().is_bypass:
            current_tenant()
        return super().raw(raw_query, params, translations, using)


def tenant_join_restriction(field, alias, related_alias):
    """ON-clause condition of a join through `field` of a tenant model: its tenant_id is the
    current tenant's (compiled when the SQL is, like the manager's filter)."""
    scope = current_scope()
    if scope.tenant is None and scope.is_bypass:
        return None
    condition = _tenant_condition(field.model, related_alias)
    target = field.related_model
    if alias is None or getattr(target, "tenancy", None) != "tenant":
        return condition
    # Between two tenant tables both sides carry the tenant: on Citus a join of colocated
    # tables is sent to one shard only when each table is bound to a tenant value, and row
    # security alone does not bind it when the policy also admits break-glass (docs/citus.md).
    return WhereNode([condition, _tenant_condition(target, alias)], AND)
