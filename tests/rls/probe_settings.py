"""Settings of the test servers (gunicorn) started by tests/rls: the project's, plus the probe.

PROBE_DB_POOL=true switches the runtime alias to Django's psycopg pool of one connection, so
that every request reuses the same physical connection.
"""

import os

from ameide.settings import *  # noqa: F403
from ameide.settings import DATABASES

ROOT_URLCONF = "tests.rls.probe_urls"

if os.environ.get("PROBE_DB_POOL") == "true":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
    # A new OPTIONS dict, so that nothing else holding the old one changes with it.
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"]["OPTIONS"],
        "pool": {"min_size": 1, "max_size": 1, "timeout": 10},
    }
