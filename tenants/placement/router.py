"""The database router of dedicated databases: a placed tenant's rows go to its database's alias.

Placed models are the tenant models other than the membership model: memberships, like the
tenant directory, users, the audit log, sessions and limits, stay on `default`, because who may
enter which tenant is decided there (accounts.admission, in one statement with users and
tenants). Global models always go to `default`, whatever instance they were reached from.

The router reads the placement from the current tenant, the Tenant row the request admitted
(read from `default` in the admission statement, or from the admission cache, which the
`ameide_admission` signal empties when a tenant's placement changes), so every process uses a
new placement from its next request (docs/placement.md, "Dedicated database").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpResponse

from ameide.database import dedicated_alias
from tenants.context import current_scope
from tenants.exceptions import PlacementUnavailable, UnscopedAcrossPlacements
from tenants.models import Placement, Tenant
from tenants.placement.kinds import loaded_in_shared_tables
from tenants.preparation import Tenancy


def is_placed(model) -> bool:
    """Whether `model`'s rows follow their tenant's placement."""
    return (
        getattr(model, "tenancy", None) == Tenancy.TENANT
        and model._meta.label_lower != settings.TENANCY_MEMBERSHIP_MODEL.lower()
    )


def alias_of(tenant) -> str:
    """The alias holding `tenant`'s placed rows; refuses a database this process does not know."""
    if tenant is None or tenant.placement != Placement.DATABASE:
        return DEFAULT_DB_ALIAS
    alias = dedicated_alias(tenant.placement_name)
    if alias not in connections.settings:
        # Fail closed: never fall back to the shared tables, where the tenant's rows are not.
        raise PlacementUnavailable(tenant=tenant)
    return alias


def current_alias() -> str:
    """The alias of the current tenant's placed rows (`default` with no tenant)."""
    scope = current_scope()
    if scope.is_bypass and Tenant.objects.exclude(placement=Placement.SHARED).exists():
        # Asked every time (unscoped() is rare and audited): a tenant placed a moment ago
        # in another process counts at once.
        raise UnscopedAcrossPlacements()
    return alias_of(scope.tenant)


def joins_global_rows() -> bool:
    """Whether a query may join the current tenant's placed rows with global rows (a
    workflow's owner): the rows are in the shared tables, next to the global ones, and it is
    not Citus, which cannot plan a distributed table joined with the coordinator's user table
    under row security (docs/citus.md). Otherwise the global rows come in a second query.

    Not a dedicated schema's either, though it shares the database: its table holds one
    tenant, so PostgreSQL expects every row to match, merges the whole table with the user
    table in id order, and checks the users' row security one by one (8 ms for the 50 newest
    of 2,000 workflows, against 1 ms in the shared tables; docs/benchmarks.md, "Stop 20")."""
    if settings.TENANCY_CITUS or current_alias() != DEFAULT_DB_ALIAS:
        return False
    tenant = current_scope().tenant
    return tenant is None or loaded_in_shared_tables(tenant)


def placement_of_alias(alias: str) -> str:
    """The dedicated database an alias (runtime or owner) serves, '' for the shared tables."""
    return connections.settings[alias].get("PLACEMENT", "") if alias in connections.settings else ""


class PlacementRouter:
    """DATABASE_ROUTERS entry (settings)."""

    def _route(self, model, **hints) -> str:
        if not is_placed(model):
            # Explicitly: with no answer Django would follow the instance hint, and a user
            # reached from a workflow in a dedicated database would be read there.
            return DEFAULT_DB_ALIAS
        return current_alias()

    db_for_read = _route
    db_for_write = _route

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        if is_placed(type(obj1)) != is_placed(type(obj2)):
            # A placed row's key to a global row (its tenant, a workflow's owner) crosses
            # databases; the application keeps it whole (tenants.placement.databases).
            return True
        return None  # Django's rule: both on the same database

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool | None:
        if not placement_of_alias(db):
            return None  # `default`: every table (the shared tables hold shared tenants)
        historical = hints.get("model")
        model_name = model_name or (historical._meta.model_name if historical else None)
        if model_name is None:
            # RunSQL and RunPython without a model hint: only in apps that have placed models.
            return any(is_placed(m) for m in apps.get_app_config(app_label).get_models())
        try:
            # The code's model: migrations' historical models lack the `tenancy` declaration.
            return is_placed(apps.get_model(app_label, model_name))
        except LookupError:
            # A model the code no longer has: a tenant model's table had a tenant key.
            fields = {f.name for f in historical._meta.fields} if historical else set()
            return "tenant" in fields


def respond_in_placement(tenant, respond: Callable[[], HttpResponse]) -> HttpResponse:
    """`respond()` inside a transaction on `tenant`'s dedicated database (as is for shared).

    ATOMIC_REQUESTS opens a transaction on every alias that sets it, on every request; a
    dedicated database is set up without it, and a request opens one on its own tenant's
    database only, so that a slow or unreachable dedicated server delays only its tenants.
    It wraps the rest of the middleware and the view, whose errors have become responses by
    then: the work commits only when the response is a success (below 400), else it is rolled
    back, as ATOMIC_REQUESTS rolls back a view that raised.
    """
    alias = alias_of(tenant)
    if alias == DEFAULT_DB_ALIAS:
        return respond()
    with transaction.atomic(using=alias):
        response = respond()
        if response.status_code >= 400:
            transaction.set_rollback(True, using=alias)
    return response


@contextmanager
def placed_atomic(*, savepoint: bool = True) -> Iterator[None]:
    """A transaction on the current tenant's dedicated database (nothing for shared tenants,
    whose work runs in the caller's transaction on `default`)."""
    alias = current_alias()
    if alias == DEFAULT_DB_ALIAS:
        yield
        return
    with transaction.atomic(using=alias, savepoint=savepoint):
        yield


@contextmanager
def tenant_atomic(*, savepoint: bool = True) -> Iterator[None]:
    """`transaction.atomic()` for a service's write under the current tenant: on `default`,
    and for a tenant in a dedicated database on its database too.

    There is no two-phase commit between the two: `default` (the audit row) is the inner block
    and commits first, so a failure between the commits leaves an audit row of work that is
    not there, never work without its audit row.
    """
    with placed_atomic(savepoint=savepoint), transaction.atomic(savepoint=savepoint):
        yield
