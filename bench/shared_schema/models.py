"""The same tenant tables as bench/schema_per_tenant, as TenantModels of the tenancy core."""

from django.db import models

from tenants.models import TenantModel


class Item(TenantModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    definition = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, default="draft")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Added by migration 0002: the "one new migration" whose rollout pair 7 times.
    priority = models.IntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="bench_item_tenant_name_uniq")
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="bench_item_newest"),
            models.Index(fields=["tenant", "status", "-created_at"], name="bench_item_status"),
        ]

    def __str__(self) -> str:
        return self.name


class ItemRun(TenantModel):
    """Like workflows.WorkflowRun."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, default="queued")
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="bench_itemrun_newest"),
            models.Index(fields=["tenant", "item", "-created_at"], name="bench_itemrun_item"),
        ]


class Member(TenantModel):
    """Like accounts.Membership: a user's role in a tenant."""

    user_id_value = models.BigIntegerField()
    role = models.CharField(max_length=16, default="member")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user_id_value"], name="bench_member_uniq")
        ]
