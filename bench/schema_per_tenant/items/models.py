"""The tenant tables of the django-tenants project, shaped like this project's tenant models."""

from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, default="")
    definition = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, default="draft")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Added by migration 0002: the "one new migration" whose rollout pair 7 times.
    priority = models.IntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="item_newest"),
            models.Index(fields=["status", "-created_at"], name="item_status"),
        ]

    def __str__(self) -> str:
        return self.name


class ItemRun(models.Model):
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
            models.Index(fields=["-created_at", "-id"], name="itemrun_newest"),
            models.Index(fields=["item", "-created_at"], name="itemrun_item_newest"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk}"


class Member(models.Model):
    """Like accounts.Membership: a user's role in this tenant."""

    user_id = models.BigIntegerField(unique=True)
    role = models.CharField(max_length=16, default="member")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"user {self.user_id} ({self.role})"
