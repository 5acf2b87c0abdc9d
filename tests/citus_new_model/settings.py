"""The project's settings plus an app with a new tenant model (tests/tenants/test_migrate_places_tables.py)."""

from ameide.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.citus_new_model.apps.CitusNewModelConfig"]  # noqa: F405
