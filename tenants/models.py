"""Tenant, the abstract TenantModel every tenant-owned model inherits, and the audit log."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now

from tenants.constraints import GlobalRowSecurity
from tenants.context import no_tenant
from tenants.placement.kinds import Placement
from tenants.preparation import Tenancy, install_tenant_keys
from tenants.scoping import (
    TenantManager,
    check_row_of_current_tenant,
    claim_row_for_current_tenant,
)


class Tenant(models.Model):
    """An organisation. Global: the table every tenant row points at."""

    tenancy = Tenancy.GLOBAL

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        DELETED = "deleted", "Deleted"

    slug = models.SlugField(max_length=63, unique=True, help_text="Operator-facing identifier.")
    external_id = models.CharField(
        max_length=255,
        unique=True,
        help_text="The value the identity provider's tenant claim carries (exact, case-sensitive).",
    )
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Where the tenant's rows live (issue 12, docs/placement.md). Routing reads these two
    # fields; only `tenants move` changes them.
    placement = models.CharField(
        max_length=16,
        choices=Placement.choices,
        default=Placement.SHARED,
        db_default=Placement.SHARED,
    )
    placement_name = models.CharField(
        max_length=63,
        blank=True,
        default="",
        db_default="",
        help_text="The dedicated schema, or the database server named in AMEIDE_DATABASES.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            # Under a tenant, SQL sees that tenant's own row and no other.
            GlobalRowSecurity(name="tenants_tenant_rls", under_tenant="id = {tenant}"),
            # Shared tables need no name; a dedicated schema or database always has one.
            models.CheckConstraint(
                name="tenants_tenant_placement_named",
                condition=(
                    models.Q(placement="shared", placement_name="")
                    | (~models.Q(placement="shared") & ~models.Q(placement_name=""))
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class TenantModel(models.Model):
    """Abstract base of every tenant-owned model.

    It adds the `tenant` key and a manager that is both the default and the base manager, so
    every ORM path (querysets, related managers, forward foreign keys, `save()` updates,
    deletes) is scoped to the current tenant and fails closed without one. Composite keys and
    RLS policies are added to each subclass by `install_tenant_keys` (tenants.preparation).
    """

    tenancy = Tenancy.TENANT

    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", db_index=False, editable=False
    )

    objects = TenantManager()

    class Meta:
        abstract = True
        base_manager_name = "objects"
        default_manager_name = "objects"

    def save(self, *args, **kwargs) -> None:
        claim_row_for_current_tenant(self)
        super().save(*args, **kwargs)

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update):
        # A row's tenant never changes (save() claims the row for the current tenant), so the
        # UPDATE names it in the WHERE, also inside unscoped(), and does not SET it: Citus
        # refuses an UPDATE that sets the distribution column, even to the value it already
        # has, when that value is a bound parameter (docs/citus.md).
        base_qs = base_qs.filter(tenant_id=self.tenant_id)
        values = [value for value in values if value[0].attname != "tenant_id"]
        return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)

    def delete(self, *args, **kwargs):
        check_row_of_current_tenant(self)
        return super().delete(*args, **kwargs)

    def clean_fields(self, exclude=None):
        # A key to a global row (a user) is checked for existence in the global scope: under
        # the tenant the database shows only some global rows, and who may pick which row is
        # the form field's business (members for tenant admins, anyone for platform admins).
        exclude = set(exclude or ())
        global_keys = {
            f.name
            for f in self._meta.concrete_fields
            if f.many_to_one and f.name != "tenant" and not issubclass(f.related_model, TenantModel)
        }
        super().clean_fields(exclude=exclude | global_keys)
        others = {f.name for f in self._meta.concrete_fields} - global_keys
        with no_tenant():
            super().clean_fields(exclude=exclude | others)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # Remembered so that save() can refuse to move a loaded row to another tenant.
        instance._loaded_tenant_id = instance.__dict__.get("tenant_id")
        return instance


models.signals.class_prepared.connect(install_tenant_keys, dispatch_uid="tenants.keys")


class AuditEvent(models.Model):
    """Append-only record of cross-tenant and lifecycle acts; the runtime role cannot change it.

    Rows are written only through `ameide_private.record_audit` and `open_breakglass`
    (tenants.audit, tenants.db.breakglass), which check the application's signature and stamp
    `at`, `txid` and `pid` themselves, and `import_audit` for the history an import brings
    (marked with `imported_from`). Under a tenant, SQL reads that tenant's rows only.
    """

    tenancy = Tenancy.GLOBAL

    at = models.DateTimeField(db_default=Now())
    actor = models.CharField(max_length=255, blank=True)
    acting_as = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=64)
    tenant_id_value = models.BigIntegerField(null=True, blank=True, db_column="tenant_id")
    tenant_slug = models.CharField(max_length=63, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    txid = models.BigIntegerField(
        db_default=models.Func(function="txid_current", output_field=models.BigIntegerField()),
        editable=False,
    )
    pid = models.IntegerField(
        db_default=models.Func(function="pg_backend_pid", output_field=models.IntegerField()),
        editable=False,
        help_text="The PostgreSQL backend that wrote the row.",
    )
    # History another database recorded, brought by `tenants import`: the SHA-256 of the
    # archive it came from (only ameide_private.import_audit sets it); empty for every event
    # recorded in this database.
    imported_from = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        editable=False,
        help_text="SHA-256 of the archive this event was imported from; empty: recorded here.",
    )

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            GlobalRowSecurity(name="tenants_auditevent_rls", under_tenant="tenant_id = {tenant}"),
        ]
        indexes = [
            models.Index(fields=["txid"], name="audit_txid_idx"),
            models.Index(fields=["tenant_id_value", "-at"], name="audit_tenant_at_idx"),
            models.Index(fields=["action", "-at"], name="audit_action_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.tenant_slug or '-'}"

    def save(self, *args, **kwargs) -> None:
        raise PermissionError("Audit events are written by tenants.audit.record_event only.")

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class PlacementMove(models.Model):
    """One `tenants move` of a tenant between placements: its steps, figures and outcome.

    Global (the primary database, like the tenant directory): the record survives a command
    killed half-way, and the next run resumes from the last step it says is done. At most one
    unfinished move per tenant (a partial unique constraint), so two operators cannot run two.
    """

    tenancy = Tenancy.GLOBAL

    class Outcome(models.TextChoices):
        RUNNING = "", "Running"
        DONE = "done", "Done"
        ROLLED_BACK = "rolled_back", "Rolled back"

    # CASCADE: purging a tenant removes its move records (the audit log keeps their trace).
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    source_kind = models.CharField(max_length=16, choices=Placement.choices)
    source_name = models.CharField(max_length=63, blank=True)
    target_kind = models.CharField(max_length=16, choices=Placement.choices)
    target_name = models.CharField(max_length=63, blank=True)
    # The last step completed (tenants.placement.moving.STEPS); "" before the first.
    step = models.CharField(max_length=16, blank=True, default="")
    outcome = models.CharField(max_length=16, blank=True, default="", choices=Outcome.choices)
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # rows copied per table, catch-up rounds, freeze window in ms, per-step seconds, checksums.
    stats = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # Operators' records: nothing of them under a tenant's scope.
            GlobalRowSecurity(name="tenants_placementmove_rls", under_tenant="false"),
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(finished_at__isnull=True),
                name="tenants_placementmove_one_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.source_kind} -> {self.target_kind} {self.target_name}"
