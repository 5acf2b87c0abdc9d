"""Date-times are parsed by psycopg's C loader on every PostgreSQL connection, and come back
exactly as Django's own loader returns them."""

from __future__ import annotations

import datetime

import psycopg
import pytest
from django.db import DataError, connections
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg import pq

from tenants.db import loaders

pytestmark = pytest.mark.django_db(databases=["default", "owner"])

VALUES = [
    "2026-12-02 13:00:00+00",
    "2026-12-02 13:00:00.123456+00",
    "1999-12-31 23:59:59.999999-08",
    "2024-02-29 00:00:00.5+05:30",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "1901-06-01 12:00:00+00:19:32",
]
SQL = "SELECT " + ", ".join(f"%s::timestamptz AS v{n}" for n in range(len(VALUES)))


def _load(alias: str, *, django_loader: bool) -> tuple:
    connection = connections[alias]
    with connection.cursor() as cursor:
        if django_loader:
            # What Django registers without this module: its subclass of psycopg's Python
            # loader, on this cursor only.
            register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute(SQL, VALUES)
        return cursor.fetchone()


@pytest.mark.parametrize("alias", ["default", "owner"])
def test_every_postgresql_connection_gets_the_loader(alias):
    connection = connections[alias]
    connection.ensure_connection()
    registered = connection.connection.adapters.get_loader(loaders.TIMESTAMPTZ_OID, pq.Format.TEXT)
    assert issubclass(registered, loaders._TzLoader)
    assert registered.timezone is connection.timezone


def test_the_parser_is_psycopgs_c_one_where_it_is_installed():
    if psycopg.pq.__impl__ not in ("binary", "c"):
        pytest.fail(
            f"psycopg runs its {psycopg.pq.__impl__} implementation: install psycopg[binary]"
        )
    assert loaders._PARSER.__module__.startswith(("psycopg_binary", "psycopg_c"))


@pytest.mark.parametrize("alias", ["default", "owner"])
def test_values_are_the_ones_djangos_loader_returns(alias):
    ours = _load(alias, django_loader=False)
    djangos = _load(alias, django_loader=True)
    assert ours == djangos
    for mine, theirs in zip(ours, djangos, strict=True):
        assert mine.tzinfo is theirs.tzinfo is datetime.UTC
        assert mine.isoformat() == theirs.isoformat()


def test_a_value_out_of_range_is_refused_as_by_djangos_loader():
    for django_loader in (False, True):
        with pytest.raises(DataError), connections["owner"].cursor() as cursor:
            if django_loader:
                register_tzloader(connections["owner"].timezone, cursor.cursor)
            cursor.execute("SELECT 'infinity'::timestamptz")
            cursor.fetchone()
