"""Where each table lives on a Citus cluster, and why (read by `tenants distribute` and `check`).

- tenant tables: distributed by `tenant_id`, all colocated with the first of them, so a
  tenant's rows, its joins and its composite keys stay on one worker; except a tenant table
  that a coordinator table's policy reads through a subquery (memberships, read by the user
  table's policy), which is a reference table: Citus cannot join the two otherwise;
- reference tables (a copy on every node): the global tables that tenant tables point at,
  when their policy needs no subquery (Citus refuses subqueries in policies);
- the wall's key is a plain table, copied to the workers, and its break-glass grants a
  reference table (PRIVATE_TABLES);
- everything else stays on the coordinator: global rows written on the request path
  (sessions, limits, the run queue, the audit log) or read by the platform only.

A foreign key between tables of two kinds that Citus cannot join (coordinator to reference,
distributed to coordinator, reference to either) is listed for dropping: the ORM still keeps
those keys, but the database no longer checks them (docs/citus.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.apps import apps
from django.db import models

from tenants.constraints import GlobalRowSecurity
from tenants.db import wall
from tenants.lifecycle.tables import tenant_tables

DISTRIBUTED = "distributed"
REFERENCE = "reference"
COORDINATOR = "coordinator"
# Kinds of table a foreign key may join on Citus: (from, to).
KEYS_CITUS_KEEPS = {
    (DISTRIBUTED, DISTRIBUTED),
    (DISTRIBUTED, REFERENCE),
    (REFERENCE, REFERENCE),
    (COORDINATOR, COORDINATOR),
}
# The wall's own tables. The verifier reads them inside queries on shards, where Citus refuses
# to read a Citus table ("cannot execute a distributed query from a query on a shard"): the key
# is a plain table that tenants.db.wall.install copies to each worker; the grants are a
# reference table, so that a grant (with its audit row) and its closing reach every node in one
# 2PC transaction, and the verifier reads the node's own copy of it by the shard's name.
GRANT_TABLE = f"{wall.PRIVATE}.breakglass_grant"
PRIVATE_TABLES = {
    f"{wall.PRIVATE}.scope_key": (
        COORDINATOR,
        "a plain copy on every node (tenants.db.wall.install): the verifier reads the key "
        "inside queries on shards, where Citus refuses Citus tables",
    ),
    GRANT_TABLE: (
        REFERENCE,
        "break-glass grants on every node, opened and closed by 2PC with their audit row; the "
        "verifier reads the node's own shard by name (tenants.db.wall.breakglass_open)",
    ),
}


@dataclass(frozen=True)
class Placement:
    table: str  # as regclass prints it: schema-qualified outside the search path
    kind: str  # DISTRIBUTED, REFERENCE or COORDINATOR
    reason: str
    colocate_with: str = ""  # distributed tables: the table whose shards it shares


@dataclass(frozen=True)
class DroppedKey:
    table: str
    name: str
    target: str
    reason: str


def _policy_has_subquery(model: type[models.Model]) -> bool:
    return any(
        isinstance(c, GlobalRowSecurity) and "select" in c.under_tenant.lower()
        for c in model._meta.constraints
    )


def _read_by_global_policies() -> dict[str, str]:
    """Tables that a global table's policy reads through a subquery -> that global table."""
    found = {}
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if isinstance(constraint, GlobalRowSecurity):
                for table in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", constraint.under_tenant, re.I):
                    found[table] = model._meta.db_table
    return found


def table_plan(*, tables: list[str]) -> list[Placement]:
    """A placement for each table in `tables` (the schema's tables, as regclass text) and the
    private ones; tenant tables in foreign-key order, parents first."""
    read_by = _read_by_global_policies()
    replicated = [t.db_table for t in tenant_tables() if t.db_table in read_by]
    ordered = [t.db_table for t in tenant_tables() if t.db_table not in read_by]
    anchor = ordered[0] if ordered else ""
    plan = [Placement(table, kind, reason) for table, (kind, reason) in PRIVATE_TABLES.items()]
    for table in replicated:
        plan.append(
            Placement(
                table,
                REFERENCE,
                f"tenant rows that the policy of {read_by[table]} (on the coordinator) reads "
                "through a subquery: Citus joins a coordinator table with a reference table, "
                "not with a distributed one. Row security applies on every copy",
            )
        )
    pointed_at: dict[str, list[str]] = {}
    for table in tenant_tables():
        for field in table.model._meta.local_fields:
            target = field.related_model if field.is_relation else None
            if target is None or not field.many_to_one or not field.db_constraint:
                continue
            if getattr(target, "tenancy", None) != "tenant":
                key = f"{table.db_table}.{field.column}"
                pointed_at.setdefault(target._meta.db_table, []).append(key)
    by_table = {m._meta.db_table: m for m in apps.get_models()}
    for table in ordered:
        reason = "tenant rows, distributed by tenant_id"
        if table != anchor:
            reason += f" and colocated with {anchor}"
        plan.append(
            Placement(table, DISTRIBUTED, reason, colocate_with=anchor if table != anchor else "")
        )
    for table in sorted(set(tables) - set(ordered) - set(replicated) - set(PRIVATE_TABLES)):
        keys = ", ".join(pointed_at.get(table, []))
        model = by_table.get(table)
        if keys and model is not None and not _policy_has_subquery(model):
            plan.append(Placement(table, REFERENCE, f"tenant tables point at it ({keys})"))
        elif keys:
            plan.append(
                Placement(
                    table,
                    COORDINATOR,
                    f"tenant tables point at it ({keys}), but its policy reads other tables "
                    "through a subquery, which Citus refuses on distributed and reference "
                    "tables; those keys are dropped",
                )
            )
        else:
            plan.append(
                Placement(
                    table,
                    COORDINATOR,
                    "no tenant table points at it: global rows written on the request path or "
                    "read by the platform, kept off the workers",
                )
            )
    return plan


def keys_to_drop(*, plan: list[Placement], keys: list[tuple[str, str, str]]) -> list[DroppedKey]:
    """The foreign keys (table, name, target) Citus cannot keep under `plan`."""
    kind = {p.table: p.kind for p in plan}
    dropped = []
    for table, name, target in keys:
        pair = (kind.get(table, COORDINATOR), kind.get(target, COORDINATOR))
        if table == target or pair in KEYS_CITUS_KEEPS:
            continue
        dropped.append(
            DroppedKey(table, name, target, f"a {pair[0]} table cannot reference a {pair[1]} one")
        )
    return dropped
