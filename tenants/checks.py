"""The tenancy linter: `manage.py check` refuses models that could leak across tenants."""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import models

from tenants.constraints import CompositeForeignKey, RowLevelSecurity, TenantPrimaryKey
from tenants.models import TenantModel
from tenants.preparation import Tenancy, tenant_foreign_keys
from tenants.scoping import TenantManager


def _error(model, code: str, msg: str, hint: str = "") -> checks.Error:
    return checks.Error(msg, hint=hint or None, obj=model, id=f"tenants.{code}")


def _leads_with_tenant(fields) -> bool:
    fields = [f.lstrip("-") for f in fields]
    return bool(fields) and fields[0] in ("tenant", "tenant_id")


def check_tenant_model(model: type[models.Model]) -> list[checks.CheckMessage]:
    """All the rules one tenant model must follow (see DESIGN: keys, managers, RLS)."""
    errors: list[checks.CheckMessage] = []
    meta = model._meta
    name = meta.label
    for role, manager in (("default", meta.default_manager), ("base", meta.base_manager)):
        if not isinstance(manager, TenantManager):
            errors.append(
                _error(
                    model,
                    "E002",
                    f"{name}'s {role} manager is not a TenantManager.",
                    "Keep TenantModel's `objects` first; do not set another base manager.",
                )
            )
    uniques = [c for c in meta.constraints if isinstance(c, models.UniqueConstraint)]
    if not any(isinstance(c, TenantPrimaryKey) for c in meta.constraints):
        errors.append(_error(model, "E003", f"{name} has no PRIMARY KEY (tenant, id)."))
    for constraint in uniques:
        if not _leads_with_tenant(constraint.fields):
            errors.append(
                _error(
                    model,
                    "E004",
                    f"{name}.{constraint.name} does not lead with tenant.",
                    "A global UNIQUE tells one tenant what another has stored.",
                )
            )
    for fields in meta.unique_together:
        if not _leads_with_tenant(fields):
            errors.append(_error(model, "E004", f"{name} unique_together {fields} lacks tenant."))
    for field in meta.local_fields:
        if field.unique and not field.primary_key:
            errors.append(
                _error(
                    model,
                    "E004",
                    f"{name}.{field.name} is unique across all tenants.",
                    "Use a UniqueConstraint(fields=['tenant', ...]) instead.",
                )
            )
    composite = {tuple(c.fields) for c in meta.constraints if isinstance(c, CompositeForeignKey)}
    for field in tenant_foreign_keys(model):
        if ("tenant", field.name) not in composite or field.db_constraint:
            errors.append(
                _error(model, "E005", f"{name}.{field.name} is not a composite foreign key.")
            )
    for index in meta.indexes:
        if index.fields and not _leads_with_tenant(index.fields):
            errors.append(
                _error(model, "E006", f"{name} index {index.name} does not lead with tenant.")
            )
    for field in meta.local_fields:
        # Keys to global rows (a user) keep their own index: deleting that global row looks up
        # its dependants across tenants.
        global_key = field.is_relation and not issubclass(field.related_model, TenantModel)
        if field.db_index and not (field.primary_key or field.unique or global_key):
            errors.append(
                _error(
                    model,
                    "E006",
                    f"{name}.{field.name} has a single-column index.",
                    "Index (tenant, field) in Meta.indexes instead.",
                )
            )
    if not any(isinstance(c, RowLevelSecurity) for c in meta.constraints):
        errors.append(_error(model, "E008", f"{name} has no RowLevelSecurity policy."))
    for manager in meta.managers:
        # Any other manager is a way around the tenant filter (it would return what RLS
        # admits, 0 rows, instead of failing closed).
        if not isinstance(manager, TenantManager):
            errors.append(
                _error(
                    model,
                    "E009",
                    f"{name}.{manager.name} is a {type(manager).__name__}, not a TenantManager.",
                    "Give tenant models TenantManager subclasses only.",
                )
            )
    return errors


def check_model_tenancy(model: type[models.Model]) -> list[checks.CheckMessage]:
    meta = model._meta
    if meta.app_label in settings.TENANCY_GLOBAL_APPS or meta.proxy or not meta.managed:
        return []
    if meta.auto_created:
        sides = [f.related_model for f in meta.local_fields if f.is_relation]
        if any(isinstance(s, type) and issubclass(s, TenantModel) for s in sides):
            return [
                _error(
                    model,
                    "E007",
                    f"{meta.label} is an automatic many-to-many table of a tenant model.",
                    "Declare `through=` a TenantModel with both keys.",
                )
            ]
        return []
    if issubclass(model, TenantModel):
        return check_tenant_model(model)
    if getattr(model, "tenancy", None) != Tenancy.GLOBAL:
        return [
            _error(
                model,
                "E001",
                f"{meta.label} is neither a TenantModel nor declared global.",
                "Inherit TenantModel, or set `tenancy = Tenancy.GLOBAL` and say why.",
            )
        ]
    return [
        # A tenant row's `id` is unique only with its tenant (PRIMARY KEY (tenant_id, id)), and
        # on Citus a global table cannot point into a distributed one.
        _error(
            model,
            "E010",
            f"{meta.label}.{field.name} is a database foreign key from a global model to a "
            "tenant model.",
            "Keep the id in a plain column (db_constraint=False or an integer field).",
        )
        for field in meta.local_fields
        if field.is_relation
        and field.many_to_one
        and isinstance(field.related_model, type)
        and issubclass(field.related_model, TenantModel)
        and field.db_constraint
    ]


@checks.register(checks.Tags.models, "tenancy")
def tenancy_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    configs = app_configs or apps.get_app_configs()
    errors: list[checks.CheckMessage] = []
    for config in configs:
        for model in config.get_models(include_auto_created=True):
            errors.extend(check_model_tenancy(model))
    return errors
