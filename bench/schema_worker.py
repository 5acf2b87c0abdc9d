"""Pair 7 worker: provisions tenants and migrates, timing only the work, for one design.

Run as a script by bench.pairs_schemas, in the project's venv for the shared schema
(`schema_worker.py shared`) or in bench/.venv-dt for django-tenants (`schema_worker.py
schemas`). It reads one JSON request per line on stdin and answers one JSON line on stdout
with the seconds the operation took inside this process (Django start-up excluded from both
sides alike). It depends on nothing but Django, so it runs in either environment.
"""

from __future__ import annotations

import json
import sys
import time
import traceback


class SharedSchema:
    """This project: a tenant is a row; a migration runs once on the shared table."""

    app = "bench_shared_schema"

    def setup(self) -> int:
        from django.core.management import call_command

        call_command("migrate", database="owner", interactive=False, verbosity=0)
        return self.count()

    def provision(self, *, start: int, count: int) -> int:
        from tenants.services import tenant_create

        for number in range(start, start + count):
            tenant_create(slug=f"t{number:05d}", name=f"Tenant {number}")
        return self.count()

    def migrate(self, *, target: str) -> int:
        from django.core.management import call_command

        call_command("migrate", self.app, target, database="owner", interactive=False, verbosity=0)
        return self.count()

    def count(self) -> int:
        from tenants.models import Tenant

        return Tenant.objects.count()


class SchemaPerTenant:
    """django-tenants: a tenant is a schema; a migration runs once per schema."""

    app = "items"

    def setup(self) -> int:
        from django.core.management import call_command

        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        return self.count()

    def provision(self, *, start: int, count: int) -> int:
        from customers.models import Client

        for number in range(start, start + count):
            # auto_create_schema: CREATE SCHEMA and every tenant migration, as in production.
            Client(schema_name=f"t{number:05d}", name=f"Tenant {number}").save(verbosity=0)
        return self.count()

    def migrate(self, *, target: str) -> int:
        from django.core.management import call_command

        call_command(
            "migrate_schemas", self.app, target, tenant=True, interactive=False, verbosity=0
        )
        return self.count()

    def count(self) -> int:
        from customers.models import Client

        return Client.objects.exclude(schema_name="public").count()


def main() -> None:
    import django

    design = {"shared": SharedSchema, "schemas": SchemaPerTenant}[sys.argv[1]]()
    replies = sys.stdout
    sys.stdout = sys.stderr  # whatever the commands print must not garble the replies
    django.setup()
    for line in sys.stdin:
        request = json.loads(line)
        started = time.perf_counter()
        try:
            result = getattr(design, request["op"])(**request.get("args", {}))
            reply = {"seconds": time.perf_counter() - started, "tenants": result}
        except Exception:
            reply = {"error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
