"""The kinds of placement, and what a loaded tenant row says of its own, apart from the models
so the database backend can use them too."""

from __future__ import annotations

from django.db import models


class Placement(models.TextChoices):
    """Where a tenant's rows live: the shared tables, a dedicated schema, a dedicated database."""

    SHARED = "shared", "Shared tables"
    SCHEMA = "schema", "Dedicated schema"
    DATABASE = "database", "Dedicated database"


def loaded_in_shared_tables(tenant) -> bool:
    """Whether `tenant`, the row as this process loaded it, says the shared tables.

    Read from the instance's own fields: a row loaded without its placement (a deferred field)
    answers False and is never loaded here, where the backend asks from inside a statement's
    execute wrapper."""
    return getattr(tenant, "__dict__", {}).get("placement") == Placement.SHARED
