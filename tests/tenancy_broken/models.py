"""Models that break the tenancy rules, one rule each (see tests/tenants/test_checks.py)."""

from django.db import models

from tenants.models import Tenancy, TenantModel


class Orphan(models.Model):
    """Neither a TenantModel nor declared global (tenants.E001)."""

    name = models.CharField(max_length=10)


class GloballyUnique(TenantModel):
    """A unique field across all tenants (E004) and a single-column index (E006)."""

    code = models.CharField(max_length=10, unique=True)
    label = models.CharField(max_length=10, db_index=True)


class WrongManagers(TenantModel):
    """Replaces the tenant manager with a plain one (E002)."""

    plain = models.Manager()
    objects = models.Manager()

    class Meta:
        base_manager_name = "plain"
        default_manager_name = "plain"
        indexes = [models.Index(fields=["id"], name="wrong_idx")]  # E006: not tenant-leading


class Tagged(TenantModel):
    """An automatic many-to-many table between tenant models (E007)."""

    peers = models.ManyToManyField(GloballyUnique)


class ExtraManager(TenantModel):
    """Keeps the tenant manager as default and base, and adds a plain one beside it (E009)."""

    everything = models.Manager()


class PointsIntoTenants(models.Model):
    """A global model with a database foreign key to a tenant model's id alone (E010)."""

    tenancy = Tenancy.GLOBAL

    target = models.ForeignKey(GloballyUnique, on_delete=models.CASCADE)
