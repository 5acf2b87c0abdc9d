"""Purge: delete a soft-deleted tenant's rows and the tenant itself, leaving an audit record."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction

from tenants.audit import record_event
from tenants.context import no_tenant, tenant_context
from tenants.exceptions import LifecycleError
from tenants.lifecycle.progress import Progress, no_progress
from tenants.lifecycle.tables import tenant_tables
from tenants.models import Tenant, TenantModel
from tenants.placement.router import alias_of, is_placed


@dataclass(frozen=True)
class PurgeSummary:
    tenant: str
    tenant_id: int
    tables: dict[str, int]  # label -> rows deleted
    cascaded: dict[str, int]  # global rows that pointed at the tenant (e.g. provider bindings)
    audit_event_id: int

    def as_dict(self) -> dict:
        return asdict(self)


def tenant_purge(*, tenant: Tenant, progress: Progress = no_progress) -> PurgeSummary:
    """Delete every row of `tenant` in every tenant model (children first), then the tenant.

    Irreversible, so only a tenant already soft-deleted (`tenants delete`) may be purged: its
    users are locked out before its rows go. One transaction: the deletes and the audit record
    (per-table counts; the audit table keeps no key to the tenant, so the record survives)
    commit together or not at all; for a tenant in a dedicated database, one more before it
    there. Users are global and stay; their home tenant is cleared.
    """
    tables = list(reversed(tenant_tables()))
    # A tenant in a dedicated database (tenants.placement) has its placed rows there: they are
    # deleted first, in that database's own transaction (no transaction spans two databases).
    # Should the rest fail after it, the tenant stays soft-deleted and a second purge finishes.
    found = _purgeable(Tenant.objects.filter(pk=tenant.pk).first(), tenant)
    placed_alias = alias_of(found)
    counts: dict[str, int] = {}
    if placed_alias != DEFAULT_DB_ALIAS:
        placed = [table for table in tables if is_placed(table.model)]
        tables = [table for table in tables if not is_placed(table.model)]
        with transaction.atomic(using=placed_alias):
            counts.update(
                _delete_rows(tenant=found, tables=placed, using=placed_alias, progress=progress)
            )
    with transaction.atomic():
        locked = _purgeable(Tenant.objects.select_for_update().filter(pk=tenant.pk).first(), tenant)
        counts.update(
            _delete_rows(tenant=locked, tables=tables, using=DEFAULT_DB_ALIAS, progress=progress)
        )
        quote = connection.ops.quote_name
        # Global rows that point at the tenant (users' home tenant, provider bindings) and the
        # tenant row itself are global work: done in the global scope, where PostgreSQL shows
        # them, following each key's on_delete rule.
        with no_tenant():
            cascaded = _release_global_rows(locked)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {quote(Tenant._meta.db_table)} WHERE id = %s", [locked.pk]
                )
        gone = Tenant(pk=locked.pk, slug=locked.slug)  # record_event reads only pk and slug
        event = record_event(
            action="tenant.purge",
            tenant=gone,
            details={
                "external_id": locked.external_id,
                "name": locked.name,
                "tables": counts,
                "rows": sum(counts.values()),
                "cascaded": cascaded,
            },
        )
    return PurgeSummary(
        tenant=locked.slug,
        tenant_id=locked.pk,
        tables=counts,
        cascaded=cascaded,
        audit_event_id=event.pk,
    )


def _purgeable(found: Tenant | None, tenant: Tenant) -> Tenant:
    """`found` (the tenant read again), if it may be purged."""
    if found is None:
        raise LifecycleError(f"Tenant {tenant.slug!r} no longer exists.")
    if found.status != Tenant.Status.DELETED:
        raise LifecycleError(
            f"Tenant {found.slug!r} is {found.status}; soft-delete it first "
            f"(`tenants delete {found.slug}`), then purge."
        )
    return found


def _delete_rows(*, tenant: Tenant, tables: list, using: str, progress: Progress) -> dict[str, int]:
    """Delete the tenant's rows of `tables` (children first) on `using`; rows per table."""
    counts: dict[str, int] = {}
    quote = connections[using].ops.quote_name
    with tenant_context(tenant), connections[using].cursor() as cursor:
        for table in progress(tables, total=len(tables), desc=f"purge {tenant.slug}"):
            # RLS admits only this tenant's rows; the predicate says the same for readers.
            tenant_column = quote(table.model._meta.get_field("tenant").column)
            cursor.execute(
                f"DELETE FROM {quote(table.db_table)} WHERE {tenant_column} = %s", [tenant.pk]
            )
            counts[table.label] = cursor.rowcount
    return counts


def _release_global_rows(tenant: Tenant) -> dict[str, int]:
    """Apply on_delete of every global key to `tenant`; tenant tables were emptied before."""
    released: dict[str, int] = {}
    relations = [
        f
        for f in Tenant._meta.get_fields(include_hidden=True)  # related_name="+" keys too
        if f.auto_created and not f.concrete and (f.one_to_many or f.one_to_one)
    ]
    for relation in relations:
        model = relation.related_model
        if issubclass(model, TenantModel) or not relation.field.concrete:
            continue
        rows = model._base_manager.filter(**{relation.field.name: tenant})
        rule = relation.on_delete
        if rule is models.SET_NULL:
            count = rows.update(**{relation.field.name: None})
        elif rule is models.CASCADE:
            count = rows.delete()[0]
        elif rows.exists():
            raise LifecycleError(f"{model._meta.label} rows still refer to {tenant.slug!r}.")
        else:
            count = 0
        if count:
            released[model._meta.label] = count
    return released
