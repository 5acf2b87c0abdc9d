"""Settings of pair 7's shared-schema side: the project plus one bench-only tenant app."""

from ameide.settings import *  # noqa: F403
from ameide.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.shared_schema.apps.SharedSchemaConfig"]
