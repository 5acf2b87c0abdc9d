"""Settings of the gunicorn servers of tests/limits: the project's, plus the hold view."""

from ameide.settings import *  # noqa: F403

ROOT_URLCONF = "tests.limits.urls"
