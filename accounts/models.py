"""Identity: users keyed by (issuer, subject), and their memberships in tenants."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from tenants.models import Tenancy, Tenant, TenantModel


class User(AbstractUser):
    """A person. Global: one account may belong to several tenants through memberships.

    Accounts from an identity provider are keyed by (issuer, subject) and never linked to
    another account by e-mail. Local accounts (platform admins, demo users) have no issuer.
    """

    tenancy = Tenancy.GLOBAL

    issuer = models.CharField(max_length=512, blank=True, default="")
    subject = models.CharField(max_length=255, blank=True, default="")
    home_tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The tenant a local-password sign-in enters (demo users, tenant admins).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "subject"],
                condition=~Q(issuer=""),
                name="user_issuer_subject_uniq",
            )
        ]

    @property
    def is_platform_admin(self) -> bool:
        return self.is_active and self.is_superuser


class Membership(TenantModel):
    """A user's place in one tenant, with its role there."""

    class Role(models.TextChoices):
        MEMBER = "member", "Member"
        ADMIN = "admin", "Tenant admin"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_tenant_user_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant_id} ({self.role})"
