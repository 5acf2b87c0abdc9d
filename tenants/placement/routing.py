"""The migration router of dedicated schemas: only tenant models' operations run there."""

from __future__ import annotations

from django.apps import apps as global_apps

from tenants.placement.paths import ALIAS_PREFIX
from tenants.preparation import Tenancy


def is_tenant_model(model) -> bool:
    """Whether a (possibly historical) model is a tenant model.

    The current model class says so (`tenancy`); a model that no longer exists is judged by
    its historical fields: a `tenant` key to tenants.Tenant and a `tenant_id` column."""
    label = model._meta.label_lower
    try:
        current = global_apps.get_model(label)
    except LookupError:
        current = None
    if current is not None:
        return getattr(current, "tenancy", None) == Tenancy.TENANT
    try:
        field = model._meta.get_field("tenant")
    except Exception:  # noqa: BLE001 - FieldDoesNotExist and historical oddities alike
        return False
    related = getattr(field, "related_model", None)
    return related is not None and getattr(related._meta, "label_lower", "") == "tenants.tenant"


class SchemaMigrationRouter:
    """On a connection pinned to a dedicated schema, only tenant models' operations run.

    - Model operations (CreateModel, AddField, AddConstraint, ...) of a tenant model: run.
    - Those of a global model (tenants, users, the audit log): skipped; they live in public.
    - RunSQL and RunPython: skipped, unless they name a tenant model in their hints
      (`hints={"model_name": "workflow"}`); the author of such an operation says by that hint
      that it is written for a tenant table and runs once per placement.
    Every other connection is left to the other routers (None).
    """

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if not db.startswith(ALIAS_PREFIX):
            return None
        model = hints.get("model")
        if model is None and model_name is not None:
            try:
                model = global_apps.get_model(app_label, model_name)
            except LookupError:
                return False
        if model is None:
            return False
        return is_tenant_model(model)
