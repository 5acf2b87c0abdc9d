"""The tables that hold a tenant's rows, in foreign-key order, and the canonical form of a row.

The canonical form is what archives store and what their checksums cover: one JSON object per
row, keys sorted, no whitespace, UTF-8; values as JSON types (datetimes in UTC ISO 8601,
decimals and UUIDs as strings, bytes as base64, durations as Django's duration string). A
table's checksum is SHA-256 over its rows' canonical lines, each followed by a newline, in
ascending order of primary key.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db import models
from django.utils.duration import duration_string

from tenants.db.catalog import tenant_models
from tenants.exceptions import LifecycleError
from tenants.preparation import tenant_foreign_keys


@dataclass(frozen=True)
class TenantTable:
    """One tenant model seen as a table: its columns and the keys that leave it."""

    model: type[models.Model]

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def db_table(self) -> str:
        return self.model._meta.db_table

    @property
    def pk(self) -> models.Field:
        return self.model._meta.pk

    @cached_property
    def fields(self) -> tuple[models.Field, ...]:
        """Concrete fields except `tenant` (implied by the archive, rewritten on import)."""
        return tuple(f for f in self.model._meta.concrete_fields if f.name != "tenant")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.attname for f in self.fields)

    @cached_property
    def tenant_keys(self) -> dict[str, str]:
        """Column -> label of the tenant model it points at (ids rewritten with that table)."""
        return {
            f.attname: f.related_model._meta.label_lower for f in tenant_foreign_keys(self.model)
        }

    @cached_property
    def global_keys(self) -> dict[str, type[models.Model]]:
        """Column -> global model it points at (users, ...): written as portable references."""
        return {
            f.attname: f.related_model
            for f in self.fields
            if f.is_relation and f.many_to_one and f.attname not in self.tenant_keys
        }

    def unsupported(self) -> list[str]:
        """Reasons this table cannot travel in an archive (rows that would be lost)."""
        problems = []
        for field in self.model._meta.local_many_to_many:
            if field.remote_field.through._meta.auto_created:
                problems.append(
                    f"{self.label}.{field.name}: an automatic many-to-many table has no tenant "
                    "column; declare a through= TenantModel"
                )
        for field in tenant_foreign_keys(self.model):
            if field.remote_field.field_name != field.related_model._meta.pk.name:
                problems.append(f"{self.label}.{field.name}: a foreign key to a non-primary key")
        return problems


def tenant_tables() -> list[TenantTable]:
    """Every tenant model, parents before children (so inserts run in this order, deletes in
    reverse). Cycles are placed in label order: composite keys are DEFERRABLE INITIALLY
    DEFERRED, so rows of a cycle may be inserted in any order inside one transaction."""
    tables = {t.label: t for t in (TenantTable(m) for m in tenant_models())}
    waiting = {
        label: set(t.tenant_keys.values()) & tables.keys() - {label} for label, t in tables.items()
    }
    ordered: list[TenantTable] = []
    while waiting:
        ready = sorted(label for label, parents in waiting.items() if not parents)
        if not ready:  # a cycle: break it deterministically
            ready = [min(waiting)]
        for label in ready:
            ordered.append(tables[label])
            del waiting[label]
        for parents in waiting.values():
            parents.difference_update(ready)
    return ordered


def encode_value(value: Any) -> Any:
    """A database value as a JSON value that decodes back to the same value (see module doc)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return duration_string(value)
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    raise LifecycleError(f"Cannot write a {type(value).__name__} value into an archive.")


def canonical_line(data: Any) -> str:
    """The one serialisation checksums are computed over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class TableDigest:
    """Row count and SHA-256 of canonical lines fed in primary-key order."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.rows = 0

    def add(self, line: str) -> None:
        self._sha.update(line.encode("utf-8"))
        self._sha.update(b"\n")
        self.rows += 1

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()
