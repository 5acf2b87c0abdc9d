"""Tenant lifecycle writes; each one leaves an audit row in the same transaction."""

from __future__ import annotations

import functools
import re
from contextlib import nullcontext

from django.db import IntegrityError, connections, transaction
from django.db.models.sql import InsertQuery

from tenants.audit import audit_call, record_event, saved_row
from tenants.db.owner import owner_alias
from tenants.db.sequences import next_id
from tenants.exceptions import TenantInputError
from tenants.models import Placement, Tenant
from tenants.placement.schemas import checked_name, default_schema_name, migrate_schema

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def tenant_create(
    *,
    slug: str,
    name: str,
    external_id: str | None = None,
    pk: int | None = None,
    placement: str = Placement.SHARED,
    schema: str | None = None,
) -> Tenant:
    """Create a tenant and its `tenant.create` audit row. `pk`: an id the caller reserved
    (an import keeping the archive's, tenants.lifecycle.ids); default: the next one. With
    placement `schema`, its dedicated schema is provisioned first (the tenant migrations, as
    `migrate` runs them; needs the owner's connection), then the row is written, so no
    transaction of the tenant ever routes to a schema that is not there."""
    if not SLUG_RE.match(slug or ""):
        raise TenantInputError(
            f"Invalid slug {slug!r}: use 1-63 lowercase letters, digits and inner hyphens."
        )
    if not (name or "").strip():
        raise TenantInputError("A tenant needs a non-empty --name.")
    external_id = slug if external_id is None else external_id
    if not external_id or external_id != external_id.strip():
        raise TenantInputError("The external id must be non-empty and unpadded.")
    if placement not in (Placement.SHARED, Placement.SCHEMA):
        raise TenantInputError(
            f"Placement {placement!r} is not created here: use shared or schema, then "
            "`tenants move SLUG --to database NAME` (docs/placement.md)."
        )
    if schema and placement != Placement.SCHEMA:
        raise TenantInputError("--schema goes with --placement schema.")
    tenant = Tenant(
        pk=next_id(model=Tenant) if pk is None else pk,
        slug=slug,
        name=name.strip(),
        external_id=external_id,
    )
    if placement == Placement.SCHEMA:
        tenant.placement = Placement.SCHEMA
        tenant.placement_name = checked_name(schema or default_schema_name(tenant.pk))
        if connections["default"].in_atomic_block:
            # The schema's foreign keys lock the tenant table, which this transaction may hold.
            raise TenantInputError("A dedicated schema is provisioned outside any transaction.")
        if Tenant.objects.filter(slug=slug).exists():  # before the schema is made for nothing
            raise TenantInputError(f"A tenant with slug {slug!r} already exists.")
        with owner_alias() as owner:
            migrate_schema(tenant.placement_name, using=owner)
    try:
        _insert_with_audit(tenant=tenant)
    except IntegrityError:
        raise TenantInputError(
            f"A tenant with slug {slug!r} or external id {external_id!r} already exists."
        ) from None
    return tenant


def _insert_with_audit(*, tenant: Tenant, using: str = "default") -> None:
    """The tenant row and its audit row as one statement: one round trip in autocommit, where
    PostgreSQL runs it as a transaction of its own, so there is never one without the other.

    The audit row is signed over the tenant's id, hence the id reserved before (next_id).
    """
    connection = connections[using]
    fields = Tenant._meta.concrete_fields
    # As Django's insert compiler prepares each value (no field of Tenant takes an expression).
    insert_params = [
        field.get_db_prep_save(field.pre_save(tenant, True), connection) for field in fields
    ]
    audit_sql, audit_params, event = audit_call(
        action="tenant.create", tenant=tenant, details={"name": tenant.name}
    )
    # Inside a caller's transaction, a savepoint keeps a refused insert from aborting it.
    guard = transaction.atomic(using=using) if connection.in_atomic_block else nullcontext()
    with guard, connection.cursor() as cursor:
        cursor.execute(_create_sql(using, audit_sql), [*insert_params, *audit_params])
        saved_row(event, cursor.fetchone(), using=using)
    tenant._state.adding = False
    tenant._state.db = using


@functools.cache
def _create_sql(using: str, audit_sql: str) -> str:
    """The text of _insert_with_audit's statement: Django's insert of a tenant, compiled once
    per database (its text never changes, only its parameters; compiling it each time was a
    tenth of a tenant's creation), followed by the audit call."""
    insert = InsertQuery(Tenant)
    insert.insert_values(Tenant._meta.concrete_fields, [Tenant()])
    [(insert_sql, _)] = insert.get_compiler(using=using).as_sql()
    return (
        f"WITH created AS ({insert_sql} RETURNING 1) "
        f"SELECT audit.id, audit.at, audit.txid FROM created, {audit_sql} AS audit"
    )


def tenant_set_status(*, tenant: Tenant, status: str, reason: str = "") -> Tenant:
    if status not in Tenant.Status.values:
        raise TenantInputError(f"Unknown status {status!r}.")
    with transaction.atomic():
        previous = tenant.status
        tenant.status = status
        tenant.save(update_fields=["status", "updated_at"])
        record_event(
            action=f"tenant.{status}",
            tenant=tenant,
            reason=reason,
            details={"from": previous, "to": status},
        )
    return tenant


def tenant_update(*, tenant: Tenant, name: str, external_id: str) -> Tenant:
    """Rename a tenant or change the external id its identity provider's claim carries."""
    name = (name or "").strip()
    if not name:
        raise TenantInputError("A tenant needs a non-empty name.")
    if not external_id or external_id != external_id.strip():
        raise TenantInputError("The external id must be non-empty and unpadded.")
    changes = {
        field: {"from": getattr(tenant, field), "to": value}
        for field, value in (("name", name), ("external_id", external_id))
        if getattr(tenant, field) != value
    }
    if not changes:
        return tenant
    try:
        with transaction.atomic():
            tenant.name, tenant.external_id = name, external_id
            tenant.save(update_fields=["name", "external_id", "updated_at"])
            record_event(action="tenant.update", tenant=tenant, details=changes)
    except IntegrityError:
        raise TenantInputError(
            f"A tenant with external id {external_id!r} already exists."
        ) from None
    return tenant
