"""How models are prepared for tenancy: what a model declares, and what each tenant model gets.

A model says where its rows live with `tenancy = Tenancy.TENANT` (every TenantModel) or
`Tenancy.GLOBAL`. When a tenant model's class is prepared, `install_tenant_keys` adds its
(tenant_id, id) primary key, composite foreign keys, (tenant_id, fk) indexes and RLS policies as
Meta options, so `makemigrations` emits them, and makes joins through its keys carry the tenant.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

from django.db import models
from django.db.models.fields.related import lazy_related_operation

from tenants.constraints import CompositeForeignKey, RowLevelSecurity, TenantPrimaryKey
from tenants.scoping import tenant_join_restriction


class Tenancy:
    """Declarations a model makes about where its rows live (read by tenants.checks)."""

    GLOBAL = "global"
    TENANT = "tenant"


def _short_name(*parts: str, suffix: str) -> str:
    """A deterministic identifier of at most 30 characters (Django's limit for index names)."""
    digest = hashlib.sha1(".".join(parts).encode(), usedforsecurity=False).hexdigest()[:8]
    head = "_".join(p[:8] for p in parts)[: 29 - len(suffix) - 9]
    return f"{head}_{digest}_{suffix}".lower()


def _set_meta(meta, **values) -> None:
    """Set Meta options as if declared: migrations read only options in `original_attrs`."""
    for name, value in values.items():
        setattr(meta, name, value)
        meta.original_attrs[name] = value


def _constraint_name(table: str, suffix: str) -> str:
    """A readable constraint name within PostgreSQL's 63-character limit."""
    name = f"{table}_{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{table[: 63 - len(suffix) - 10]}_{digest}_{suffix}"


def install_tenant_keys(sender: type[models.Model], **kwargs: Any) -> None:
    """On each concrete TenantModel: composite keys, composite FKs, FK indexes and RLS.

    Runs when the model class is prepared, so `makemigrations` emits them for every tenant
    model without anyone writing them by hand.
    """
    if getattr(sender, "tenancy", None) != Tenancy.TENANT or sender._meta.abstract:
        return
    if sender._meta.proxy or not sender._meta.managed:
        return
    meta = sender._meta
    table = meta.db_table
    # A subclass with its own `class Meta` does not inherit the abstract base's manager names;
    # the base manager serves forward foreign keys, save() updates and cascades, so pin both.
    meta.base_manager_name = meta.base_manager_name or "objects"
    meta.default_manager_name = meta.default_manager_name or "objects"
    constraints = list(meta.constraints)
    names = {c.name for c in constraints}
    key_name = _constraint_name(table, "tenant_pk")
    if key_name not in names:
        # PRIMARY KEY (tenant_id, id) in the database: Citus distributes by tenant_id only
        # tables whose keys include it (docs/citus.md).
        constraints.append(TenantPrimaryKey(name=key_name))
    rls_name = _constraint_name(table, "rls")
    if rls_name not in names:
        constraints.append(RowLevelSecurity(name=rls_name))
    _set_meta(meta, constraints=constraints)
    for field in meta.local_fields:
        if field.is_relation and field.many_to_one and field.name != "tenant":
            lazy_related_operation(
                _key_tenant_foreign_key, sender, field.remote_field.model, field=field
            )
            # Joins through this key (e.g. User.objects.filter(memberships__role=...), from a
            # global model into tenant rows) carry the tenant too, and fail closed without one.
            field.get_extra_restriction = partial(tenant_join_restriction, field)


def _key_tenant_foreign_key(model, related_model, *, field) -> None:
    """Make a foreign key between two tenant models composite: (tenant_id, fk) -> (tenant_id, id)."""
    if getattr(related_model, "tenancy", None) != Tenancy.TENANT:
        return  # a key to a global model (a user, the tenant) stays a plain foreign key
    meta = model._meta
    field.db_constraint = False  # the composite key below replaces the single-column one
    field.db_index = False  # and the (tenant_id, fk) index below replaces the single-column one
    fk_name = _constraint_name(meta.db_table, f"{field.column}_tfk")
    if fk_name not in {c.name for c in meta.constraints}:
        _set_meta(
            meta,
            constraints=[
                *meta.constraints,
                CompositeForeignKey(fields=["tenant", field.name], name=fk_name),
            ],
        )
    index_name = _short_name(meta.model_name, field.name, suffix="tix")
    covered = any(list(i.fields[:2]) == ["tenant", field.name] for i in meta.indexes)
    if not covered:
        index = models.Index(fields=["tenant", field.name], name=index_name)
        _set_meta(meta, indexes=[*meta.indexes, index])


def tenant_foreign_keys(model: type[models.Model]) -> list[models.ForeignKey]:
    """Foreign keys of `model` that point at another tenant model (need composite keys)."""
    result = []
    for field in model._meta.local_fields:
        if field.is_relation and field.many_to_one and field.name != "tenant":
            target = field.related_model
            if isinstance(target, type) and getattr(target, "tenancy", None) == Tenancy.TENANT:
                result.append(field)
    return result
