"""Date-times read from PostgreSQL parsed by psycopg's C loader, returned as Django's own are.

Django registers a `timestamptz` loader on every connection that subclasses psycopg's
pure-Python one (to set the tzinfo it wants), so with psycopg's C extension installed every
date-time still goes through a regular expression in Python: about 3.5 µs a value, 100 values
for a page of 50 workflows (docs/benchmarks.md). The C class cannot be subclassed, so this
loader holds one and sets the tzinfo after it, as Django's does.

Connected to `connection_created` for every PostgreSQL connection, whichever backend (the
tenancy backend and Django's stock one alike): a cost both sides of the benchmarks share.
"""

from __future__ import annotations

from functools import cache

from psycopg import adapt, adapters, pq
from psycopg.postgres import types

TIMESTAMPTZ_OID = types["timestamptz"].oid
# What psycopg registered for text timestamptz: its C class when psycopg's binary or C
# package is installed, else the Python one (then this changes nothing but the class).
_PARSER = adapters.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)


class _TzLoader(adapt.Loader):
    # Django reads it (DatabaseWrapper.create_cursor) and registers a loader of its own on a
    # cursor only where it differs from the connection's time zone.
    timezone = None

    def __init__(self, oid, context=None) -> None:
        super().__init__(oid, context)
        self._parse = _PARSER(oid, context).load

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


@cache
def loader_for(timezone) -> type[_TzLoader]:
    """The loader class for one tzinfo (Django's connection time zone, or None)."""
    return type("TimestamptzLoader", (_TzLoader,), {"timezone": timezone})


def register(sender, connection, **kwargs) -> None:
    """On a new PostgreSQL connection: replace Django's loader, keeping its time zone."""
    if connection.vendor != "postgresql":
        return
    adapters_map = connection.connection.adapters
    current = adapters_map.get_loader(TIMESTAMPTZ_OID, pq.Format.TEXT)
    adapters_map.register_loader(TIMESTAMPTZ_OID, loader_for(getattr(current, "timezone", None)))
