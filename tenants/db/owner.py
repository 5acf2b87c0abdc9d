"""The owner's connection, for the few commands that need it (migrate, flush, tenants setup).

Runtime processes have no owner alias in DATABASES and never read the owner's address: it is
added here, for the duration of one command, and removed again when the command ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import environ
from django.db import connections

from ameide.database import owner_settings

OWNER_ALIAS = "owner"


def register_owner_alias() -> str:
    """Add the `owner` alias to this process's connections (idempotent); returns its name."""
    if OWNER_ALIAS not in connections.settings:
        # configure_settings() fills Django's defaults in; it insists on a `default` entry.
        configured = connections.configure_settings(
            {"default": {"ENGINE": "unused"}, OWNER_ALIAS: owner_settings(environ.Env())}
        )
        connections.settings[OWNER_ALIAS] = configured[OWNER_ALIAS]
    return OWNER_ALIAS


@contextmanager
def owner_alias() -> Iterator[str]:
    """The owner alias for one command: closed and removed when the block ends."""
    present = OWNER_ALIAS in connections.settings
    alias = register_owner_alias()
    try:
        yield alias
    finally:
        if not present:
            for connection in connections.all(initialized_only=True):
                if connection.alias == alias:
                    connection.close()
                    del connections[alias]
            del connections.settings[alias]
