"""A second database on the same server for the import tests: the block runs against it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

ALIASES = ("default", "owner")


def close_all() -> None:
    for alias in ALIASES:
        connections[alias].close()


@contextmanager
def in_database(name: str) -> Iterator[None]:
    """Run the block against database `name` (the runtime and owner aliases both; dedicated
    databases stay those of the test session)."""
    saved = {alias: connections[alias].settings_dict["NAME"] for alias in ALIASES}
    close_all()
    for alias in ALIASES:
        connections[alias].settings_dict["NAME"] = name
    try:
        yield
    finally:
        close_all()
        for alias, value in saved.items():
            connections[alias].settings_dict["NAME"] = value
