"""Prototype (bench only): the tenant manager with its filter built once per model.

tenants.scoping.TenantManager adds its condition with `.filter(tenant_id=CurrentTenantId())`,
which clones the new queryset and runs Django's whole filter machinery (add_q, build_filter,
expression resolution, a new BigIntegerField per call) for every queryset. The condition is
the same every time, because its value is read only when the SQL is compiled; so here it is
built once per model and added to the fresh queryset's WHERE node directly. Same SQL, same
fail-closed behaviour (the core's CurrentTenantId decides). Measured by pair 1b.
"""

from __future__ import annotations

from django.db import models
from django.db.models.lookups import Exact
from django.db.models.sql.where import AND

from tenants.scoping import CurrentTenantId, TenantQuerySet

_TENANT_ID_FIELD = models.BigIntegerField()


class _SharedCurrentTenantId(CurrentTenantId):
    output_field = _TENANT_ID_FIELD

    def __init__(self) -> None:
        models.Expression.__init__(self)


class PrebuiltTenantManager(models.Manager.from_queryset(TenantQuerySet)):
    def get_queryset(self) -> TenantQuerySet:
        queryset = super().get_queryset()
        queryset.query.where.add(self._tenant_condition(), AND)
        return queryset

    def _tenant_condition(self) -> Exact:
        condition = self.model.__dict__.get("_bench_tenant_condition")
        if condition is None:
            column = self.model._meta.get_field("tenant").get_col(self.model._meta.db_table)
            condition = Exact(column, _SharedCurrentTenantId())
            self.model._bench_tenant_condition = condition
        return condition


def attach(model: type[models.Model], *, using: str | None = None) -> PrebuiltTenantManager:
    """The prototype manager bound to `model` without replacing the model's own managers."""
    manager = PrebuiltTenantManager()
    manager.model = model
    manager.name = "bench_prebuilt"
    return manager.db_manager(using) if using else manager
