"""What row-level security and the per-transaction tenant cost on the workflows list endpoint.

Not a test (pytest does not collect it): a quick measurement whose numbers go into the README.
It builds its own database (`rls_cost` on the configured server), fills it, and times
GET /api/workflows/ (one page of 50, newest first) in-process with Django's test client in
three set-ups, interleaved round by round:

  full       the project as it runs: tenancy backend (set_config per transaction) + RLS
  no-rls     the tenancy backend, RLS disabled on the tenant tables
  neither    Django's stock PostgreSQL backend (no set_config) and RLS disabled

The ORM scoping (WHERE tenant_id = ...) is the same in all three.

    .venv/bin/python tests/rls/measure_rls_cost.py [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "rls_cost"
TENANTS, ROWS_PER_TENANT = 20, 2000


def point_at_own_database() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ameide.settings")
    os.environ["DEBUG"] = "false"
    for key in ("DATABASE_URL", "DATABASE_OWNER_URL"):
        if os.environ.get(key):
            url = urllib.parse.urlsplit(os.environ[key])
            os.environ[key] = urllib.parse.urlunsplit(url._replace(path=f"/{DATABASE}"))
    if not os.environ.get("DATABASE_URL"):
        os.environ["AMEIDE_DB_NAME"] = DATABASE


def build() -> tuple[object, list[str]]:
    from django.core.management import call_command
    from django.db import connections

    from tenants.context import tenant_context
    from tenants.db.catalog import tenant_models
    from tenants.db.owner import register_owner_alias
    from tenants.models import Tenant

    register_owner_alias()  # a measurement harness builds its data as the owner
    call_command("tenants", "setup", verbosity=0)
    call_command("migrate", verbosity=0, interactive=False)
    tables = [m._meta.db_table for m in tenant_models()]
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tenants_tenant")
        if cursor.fetchone()[0] == 0:
            for number in range(TENANTS):
                tenant = Tenant.objects.create(
                    slug=f"t{number}", external_id=f"t{number}", name=f"T{number}"
                )
                cursor.execute(
                    "INSERT INTO workflows_workflow (tenant_id, name, description, definition, "
                    "status, created_at, updated_at) SELECT %s, 'w' || g, '', '{}', 'draft', "
                    "now() - g * interval '1 second', now() FROM generate_series(1, %s) g",
                    [tenant.pk, ROWS_PER_TENANT],
                )
            cursor.execute("ANALYZE")
    from accounts.models import Membership, User

    tenant = Tenant.objects.get(slug="t0")
    user, created = User.objects.get_or_create(username="measure", home_tenant=tenant)
    if created:
        with tenant_context(tenant):
            Membership.objects.create(user=user)
    return user, tables


def set_rls(tables: list[str], *, enabled: bool) -> None:
    from django.db import connections

    with connections["owner"].cursor() as cursor:
        for table in tables:
            verb = "ENABLE" if enabled else "DISABLE"
            cursor.execute(f"ALTER TABLE {table} {verb} ROW LEVEL SECURITY")


def use_backend(engine: str) -> None:
    from django.db import connections

    connections["default"].close()
    connections.settings["default"]["ENGINE"] = engine
    del connections["default"]


def time_requests(client, count: int) -> float:
    """Mean seconds per request over `count` requests (after a few warm-up ones)."""
    for _ in range(5):
        assert client.get("/api/workflows/").status_code == 200
    started = time.perf_counter()
    for _ in range(count):
        response = client.get("/api/workflows/")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and len(response.json()["results"]) == 50
    return elapsed / count


def time_queries(tenant, count: int) -> float:
    """Mean seconds per list query alone: one transaction, the page of 50 the endpoint reads."""
    from django.db import transaction

    from tenants.context import tenant_context
    from workflows import selectors

    def page():
        with tenant_context(tenant), transaction.atomic():
            return list(selectors.workflow_list().order_by("-created_at", "-id")[:50])

    for _ in range(5):
        page()
    started = time.perf_counter()
    for _ in range(count):
        rows = page()
    assert len(rows) == 50
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Many short rounds, the three set-ups interleaved: noise from other work on the machine
    # spreads evenly over them.
    parser.add_argument("--requests", type=int, default=40, help="requests per round")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    point_at_own_database()
    import django

    django.setup()
    from django.test import Client

    from tenants.db.roles import grant_runtime_privileges

    user, tables = build()
    grant_runtime_privileges(using="owner")
    client = Client()
    client.force_login(user)
    setups = {
        "full": ("tenants.db.backend", True),
        "no-rls": ("tenants.db.backend", False),
        "neither": ("django.db.backends.postgresql", False),
    }
    tenant = user.home_tenant
    measures = {"request": lambda: time_requests(client, args.requests)}
    measures["query"] = lambda: time_queries(tenant, args.requests * 4)
    samples = {(m, name): [] for m in measures for name in setups}
    try:
        for _ in range(args.rounds):
            for name, (engine, rls) in setups.items():
                set_rls(tables, enabled=rls)
                use_backend(engine)
                for measure, run in measures.items():
                    samples[measure, name].append(run() * 1000)
    finally:
        set_rls(tables, enabled=True)
    for measure in measures:
        print(f"{measure}: ms per {measure}, over {args.rounds} rounds (median / fastest round)")
        for pick in (statistics.median, min):
            value = {name: pick(samples[measure, name]) for name in setups}
            row = "  ".join(f"{name} {value[name]:.3f}" for name in setups)
            print(
                f"  {pick.__name__:6}  {row}  |  RLS {value['full'] / value['no-rls']:.3f}  "
                f"set_config {value['no-rls'] / value['neither']:.3f}  "
                f"both {value['full'] / value['neither']:.3f}"
            )


if __name__ == "__main__":
    main()
