"""Generated datasets: tenants with Zipf-distributed sizes, built in SQL and reused across runs.

Rows are produced inside PostgreSQL (INSERT ... SELECT generate_series) as the owner and
inserted in creation-time order, so one tenant's rows are spread over the whole table the way
production traffic spreads them (nothing is flattered by tenant-clustered heap pages). The
parameters are kept in a `bench_dataset` table; a later run with the same parameters reuses
the database instead of building it again.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass

from django.core.management import call_command
from django.db import connections

GENERATOR_VERSION = 4
MEMBER_USERNAME = "bench-member"
IDP = "https://idp.bench.invalid/"  # the issuer of the identity directory's users
OWNER_USERNAME = "bench-owner"
MEMBER_PASSWORD = "bench-password"  # noqa: S105 (a throwaway account of the benchmark database)
# The HTTP and list pairs read the tenant of this size rank: big enough for a full page of 50.
SERVED_RANK = 10
# The tenant of the next rank has thousands of members (identities of the directory, homed
# elsewhere), the served one a handful: pair 2m compares what their pages cost.
CROWDED_RANK = SERVED_RANK + 1

DEFINITION = json.dumps(
    {
        "version": 3,
        "trigger": {"type": "schedule", "cron": "*/15 * * * *"},
        "steps": [
            {"id": "fetch", "type": "http", "url": "https://example.invalid/orders"},
            {"id": "transform", "type": "map", "expression": "orders[].{id: id, total: total}"},
            {"id": "store", "type": "sql", "table": "orders_daily"},
        ],
    }
)


@dataclass(frozen=True)
class DatasetSpec:
    tenants: int
    rows: int
    users_per_tenant: int = 3  # identities of an IdP, each a member of its home tenant
    crowded_members: int = 5_000  # members of the tenant at CROWDED_RANK (at most every user)
    zipf_exponent: float = 1.0
    seed: int = 36
    version: int = GENERATOR_VERSION

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Dataset:
    alias: str  # the owner alias of the database holding it
    spec: DatasetSpec
    reused: bool
    build_seconds: float

    def tenant_at_rank(self, rank: int) -> tuple[int, int]:
        """(tenant id, its row count) of the tenant with the given size rank (1 = largest)."""
        with connections[self.alias].cursor() as cursor:
            cursor.execute("SELECT tenant_id, rows FROM bench_tenant_size WHERE rank = %s", [rank])
            return cursor.fetchone()


def dataset_specs(*, full: bool) -> dict[str, DatasetSpec]:
    """The 10,000-tenant dataset and the 1,000-tenant one with the same number of rows."""
    rows = 2_000_000 if full else 200_000
    return {
        "main": DatasetSpec(tenants=10_000, rows=rows),
        "small": DatasetSpec(tenants=1_000, rows=rows),
    }


def zipf_sizes(*, spec: DatasetSpec) -> list[int]:
    """Rows per size rank: proportional to 1/rank^s, at least one each, summing to spec.rows."""
    weights = [1.0 / rank**spec.zipf_exponent for rank in range(1, spec.tenants + 1)]
    scale = spec.rows / sum(weights)
    sizes = [max(1, int(weight * scale)) for weight in weights]
    sizes[0] += spec.rows - sum(sizes)  # the rounding remainder goes to the largest tenant
    return sizes


def ensure_dataset(*, owner_alias: str, runtime_alias: str, spec: DatasetSpec) -> Dataset:
    """Reuse the database if it holds a dataset of `spec`, otherwise build it from scratch."""
    started = time.perf_counter()
    if stored_spec(owner_alias=owner_alias) == spec.as_dict():
        # Migrated again, so a reused dataset has this code's schema and the database wall's
        # current functions (migrate installs them; nothing else changes when up to date).
        call_command("migrate", database=owner_alias, interactive=False, verbosity=0)
        return Dataset(alias=owner_alias, spec=spec, reused=True, build_seconds=0.0)
    recreate_database(owner_alias=owner_alias, runtime_alias=runtime_alias)
    generate(owner_alias=owner_alias, spec=spec)
    return Dataset(
        alias=owner_alias, spec=spec, reused=False, build_seconds=time.perf_counter() - started
    )


def stored_spec(*, owner_alias: str) -> dict | None:
    connection = connections[owner_alias]
    with connection._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [connection.settings_dict["NAME"]]
        )
        if cursor.fetchone() is None:
            return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_dataset') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT params FROM bench_dataset")
        row = cursor.fetchone()
    return json.loads(row[0]) if row and isinstance(row[0], str) else (row[0] if row else None)


def recreate_database(*, owner_alias: str, runtime_alias: str) -> None:
    from tenants.db.roles import ensure_database, ensure_roles

    connection = connections[owner_alias]
    name = connection.settings_dict["NAME"]
    for alias in (owner_alias, runtime_alias):
        connections[alias].close()
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)} WITH (FORCE)")
    ensure_database(using=owner_alias)
    ensure_roles(using=owner_alias)
    call_command("migrate", database=owner_alias, interactive=False, verbosity=0)


def generate(*, owner_alias: str, spec: DatasetSpec) -> None:
    from django.contrib.auth.hashers import make_password

    sizes = zipf_sizes(spec=spec)
    tenant_order = list(range(1, spec.tenants + 1))
    random.Random(spec.seed).shuffle(tenant_order)  # size rank -> n-th tenant, not id order
    connection = connections[owner_alias]
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(
            "INSERT INTO tenants_tenant (slug, external_id, name, status, created_at, updated_at) "
            "SELECT 'bench-' || lpad(g::text, 5, '0'), 'bench-' || lpad(g::text, 5, '0'), "
            "'Benchmark tenant ' || g, 'active', now(), now() "
            "FROM generate_series(1, %s) AS g ORDER BY g",
            [spec.tenants],
        )
        cursor.execute(
            "CREATE TABLE bench_tenant_size (tenant_id bigint PRIMARY KEY, rank int UNIQUE, "
            "rows int NOT NULL)"
        )
        cursor.execute(
            "SELECT id FROM tenants_tenant WHERE slug LIKE 'bench-%%' ORDER BY slug",
        )
        tenant_ids = [row[0] for row in cursor.fetchall()]
        with cursor.cursor.copy(
            "COPY bench_tenant_size (tenant_id, rank, rows) FROM STDIN"
        ) as copy:
            for rank, (nth, size) in enumerate(zip(tenant_order, sizes, strict=True), start=1):
                copy.write_row((tenant_ids[nth - 1], rank, size))
        cursor.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined, issuer, subject, home_tenant_id) "
            "VALUES (%s, false, %s, 'Bench', 'Owner', '', false, true, now(), '', '', NULL) "
            "RETURNING id",
            ["!", OWNER_USERNAME],
        )
        owner_id = cursor.fetchone()[0]
        # The owner of every workflow is a member of every tenant, as owners are in the app
        # (under a tenant, PostgreSQL shows only that tenant's members: docs/security.md).
        cursor.execute(
            "INSERT INTO accounts_membership (tenant_id, user_id, role, created_at) "
            "SELECT id, %s, 'admin', now() FROM tenants_tenant WHERE slug LIKE 'bench-%%'",
            [owner_id],
        )
        # An identity directory of realistic size (admission and the users' policy look up
        # through it): users of an IdP, each a member of its home tenant, every third one of
        # a second tenant as well.
        cursor.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined, issuer, subject, home_tenant_id) "
            "SELECT '!', false, 'idp-user-' || g, 'Bench', 'User', '', false, true, now(), "
            "%s, 'user-' || g, t.id "
            "FROM generate_series(1, %s) AS g "
            "JOIN tenants_tenant t ON t.slug = 'bench-' || lpad((1 + g %% %s)::text, 5, '0')",
            [IDP, spec.tenants * spec.users_per_tenant, spec.tenants],
        )
        cursor.execute(
            "INSERT INTO accounts_membership (tenant_id, user_id, role, created_at) "
            "SELECT home_tenant_id, id, (ARRAY['admin', 'member', 'viewer'])[1 + id %% 3], now() "
            "FROM accounts_user WHERE issuer = %s "
            "UNION ALL "
            "SELECT t.id, u.id, 'member', now() FROM accounts_user u "
            "JOIN tenants_tenant t ON t.slug = 'bench-' || lpad((1 + (u.id * 7919) %% %s)::text, 5, '0') "
            "WHERE u.issuer = %s AND u.id %% 3 = 0 "
            "AND t.id <> u.home_tenant_id",
            [IDP, spec.tenants, IDP],
        )
        crowded_tenant = tenant_ids[tenant_order[CROWDED_RANK - 1] - 1]
        cursor.execute(
            "INSERT INTO accounts_membership (tenant_id, user_id, role, created_at) "
            "SELECT %s, u.id, 'viewer', now() FROM accounts_user u WHERE u.issuer = %s "
            "AND NOT EXISTS (SELECT 1 FROM accounts_membership m "
            "                WHERE m.tenant_id = %s AND m.user_id = u.id) "
            "ORDER BY u.id LIMIT %s",
            [crowded_tenant, IDP, crowded_tenant, spec.crowded_members],
        )
        cursor.execute("SELECT setseed(%s)", [(spec.seed % 1000) / 1000])
        cursor.execute(
            "INSERT INTO workflows_workflow (tenant_id, name, description, definition, status, "
            "owner_id, created_at, updated_at) "
            "SELECT tenant_id, 'workflow ' || g, "
            "'Generated workflow ' || g || ' of a benchmark tenant; it moves orders to reports.', "
            "%s::jsonb, (ARRAY['draft', 'active', 'archived'])[1 + g %% 3], %s, t, t "
            "FROM (SELECT s.tenant_id, g, now() - random() * interval '365 days' AS t "
            "      FROM bench_tenant_size s CROSS JOIN LATERAL generate_series(1, s.rows) AS g) x "
            "ORDER BY t",
            [DEFINITION, owner_id],
        )
        served_tenant = tenant_ids[tenant_order[SERVED_RANK - 1] - 1]
        cursor.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined, issuer, subject, home_tenant_id) "
            "VALUES (%s, false, %s, 'Bench', 'Member', 'member@bench.invalid', false, true, "
            "now(), '', '', %s) RETURNING id",
            [make_password(MEMBER_PASSWORD), MEMBER_USERNAME, served_tenant],
        )
        member_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO accounts_membership (tenant_id, user_id, role, created_at) "
            "VALUES (%s, %s, 'member', now())",
            [served_tenant, member_id],
        )
        cursor.execute("CREATE TABLE bench_dataset (params jsonb NOT NULL)")
        cursor.execute("INSERT INTO bench_dataset VALUES (%s::jsonb)", [json.dumps(spec.as_dict())])
        cursor.execute("COMMIT")
        cursor.execute("VACUUM (ANALYZE)")
