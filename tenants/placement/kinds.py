"""The kinds of placement, apart from the models so the database backend can use them too."""

from __future__ import annotations

from django.db import models


class Placement(models.TextChoices):
    """Where a tenant's rows live: the shared tables, a dedicated schema, a dedicated database."""

    SHARED = "shared", "Shared tables"
    SCHEMA = "schema", "Dedicated schema"
    DATABASE = "database", "Dedicated database"
