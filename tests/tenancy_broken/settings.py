"""The project's settings plus the broken app."""

from ameide.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.tenancy_broken.apps.TenancyBrokenConfig"]  # noqa: F405
