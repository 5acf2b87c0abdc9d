"""Limits per tenant, usage rolled up per minute and per day, and the PostgreSQL rate store.

All global tables (platform accounting, written in the global scope): under a tenant, SQL sees
that tenant's limits and usage only, and no rate state at all. Tenants are referenced by id
without a foreign key, so purging a tenant (tenants.lifecycle) is not held up by its history.
"""

from __future__ import annotations

from django.db import models

from tenants.constraints import GlobalRowSecurity
from tenants.models import Tenancy


class TenantLimits(models.Model):
    """A tenant's plan and the limits it overrides (absent: the default plan, no overrides)."""

    tenancy = Tenancy.GLOBAL

    tenant_id = models.BigIntegerField(unique=True)
    plan = models.CharField(max_length=32)
    overrides = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant limits"
        verbose_name_plural = "limits and usage"
        constraints = [
            GlobalRowSecurity(name="limits_tenantlimits_rls", under_tenant="tenant_id = {tenant}")
        ]

    def __str__(self) -> str:
        return f"limits of tenant {self.tenant_id} ({self.plan})"


class _Usage(models.Model):
    tenancy = Tenancy.GLOBAL

    tenant_id = models.BigIntegerField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)  # responses with status >= 500, and refusals
    refused = models.BigIntegerField(default=0)  # 429s and quota refusals
    latency_ms = models.BigIntegerField(default=0)  # sum over the requests
    latency_max_ms = models.IntegerField(default=0)
    db_ms = models.BigIntegerField(default=0)  # sum of SQL time over the requests
    queries = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageMinute(_Usage):
    """One tenant's requests in one minute (kept for TENANCY_USAGE_MINUTES_KEPT_HOURS)."""

    minute = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "minute"], name="usage_minute_uniq"),
            GlobalRowSecurity(name="limits_usageminute_rls", under_tenant="tenant_id = {tenant}"),
        ]
        indexes = [models.Index(fields=["minute"], name="usage_minute_idx")]

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} at {self.minute:%Y-%m-%d %H:%M}"


class UsageDay(_Usage):
    """One tenant's requests in one day (UTC), plus its rows and storage when last measured."""

    day = models.DateField()
    rows = models.BigIntegerField(null=True, blank=True)
    storage_bytes = models.BigIntegerField(null=True, blank=True)
    # When rows and storage_bytes were measured: the storage quota measures again once the
    # figure is older than TENANCY_STORAGE_MAX_AGE_SECONDS.
    storage_measured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant_id", "day"], name="usage_day_uniq"),
            GlobalRowSecurity(name="limits_usageday_rls", under_tenant="tenant_id = {tenant}"),
        ]

    def __str__(self) -> str:
        return f"tenant {self.tenant_id} on {self.day}"


class RateState(models.Model):
    """PostgreSQL store, rate: the theoretical arrival time of the tenant's next request (GCRA)."""

    tenancy = Tenancy.GLOBAL

    tenant_id = models.BigIntegerField(primary_key=True)
    tat = models.FloatField()

    class Meta:
        constraints = [GlobalRowSecurity(name="limits_ratestate_rls", under_tenant="false")]

    def __str__(self) -> str:
        return f"rate of tenant {self.tenant_id}"


class ConcurrencyLease(models.Model):
    """PostgreSQL store, concurrency: one row per request in progress, until it ends or expires."""

    tenancy = Tenancy.GLOBAL

    tenant_id = models.BigIntegerField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [GlobalRowSecurity(name="limits_concurrencylease_rls", under_tenant="false")]
        indexes = [models.Index(fields=["tenant_id", "expires_at"], name="lease_tenant_idx")]

    def __str__(self) -> str:
        return f"lease of tenant {self.tenant_id} until {self.expires_at}"
