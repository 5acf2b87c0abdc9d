"""A tenant model added after an install was distributed: `migrate` must place its table."""

from django.db import models

from tenants.models import TenantModel
from workflows.models import Workflow


class Gadget(TenantModel):
    """Points at a distributed table (composite key) and, through its tenant, a reference one."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=20)
