"""`manage.py demo`: two tenants, their users (local passwords) and some workflows, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, User
from tenants.actor import acting
from tenants.audit import record_event
from tenants.context import tenant_context
from tenants.models import AuditEvent, Tenant
from workflows import services
from workflows.models import Workflow

DEMO_PASSWORD = "demo"
TENANTS = {
    "acme": ("Acme Corporation", [("alice", "admin"), ("arthur", "member"), ("vera", "viewer")]),
    "globex": ("Globex Inc.", [("gina", "admin"), ("gus", "member")]),
}
# Definitions in the step language (workflows.steps); each gets a few runs, which the worker
# (`make run` starts it) executes: one approval waits for POST /api/runs/{id}/approve/ and one
# run fails on purpose.
WORKFLOWS = {
    "Onboard customer": ["start", {"set": {"stage": "welcome"}}, {"wait": 1}, "finish"],
    "Approve invoice": [
        {
            "if": {"input": "n", "gte": 1},
            "then": [{"approval": "manager"}],
            "else": [{"set": {"auto_approved": True}}],
        },
        {"set": {"paid": True}},
    ],
    "Nightly report": [{"set": {"rows": 42}}, {"wait": 0.5}, "done"],
    "Rotate keys": [{"set": {"rotated": True}}],
    "Offboard": [
        {"if": {"input": "n", "equals": 1}, "then": [{"fail": "open invoices remain"}]},
        {"set": {"offboarded": True}},
    ],
}
# The audit row that records the load: `make run` runs this command every time, and rows the
# user deleted since must stay deleted.
LOADED = "demo.load"


class Command(BaseCommand):
    help = (
        "Load the demo once: tenants acme and globex, their users and workflows (later runs "
        "change nothing)."
    )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        with acting(name="cli:demo"):
            if self._already_loaded():
                self.stdout.write(
                    "demo: already loaded; nothing re-created (rows deleted since stay deleted)"
                )
                return
            self._load()
            record_event(action=LOADED, details={"tenants": list(TENANTS)})
        self.stdout.write("demo: tenants acme, globex; users alice, arthur, vera (acme), gina, gus")
        self.stdout.write(
            f"      (globex) with password '{DEMO_PASSWORD}'; platform admin admin/admin"
        )

    def _already_loaded(self) -> bool:
        if AuditEvent.objects.filter(action=LOADED).exists():
            return True
        if Tenant.objects.filter(slug__in=list(TENANTS)).exists():
            # Loaded before the load was recorded (or a tenant of that name was made by
            # hand): leave it, and record it so the answer stays the same.
            record_event(action=LOADED, details={"tenants": [], "existing": True})
            return True
        return False

    def _load(self) -> None:
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            admin.set_password("admin")
            admin.save()
        for slug, (name, people) in TENANTS.items():
            tenant = Tenant.objects.create(slug=slug, name=name, external_id=slug)
            self._load_tenant(tenant, people)

    def _load_tenant(self, tenant: Tenant, people) -> None:
        with tenant_context(tenant):
            owner = None
            for username, role in people:
                user, created = User.objects.get_or_create(
                    username=username,
                    defaults={
                        "home_tenant": tenant,
                        "email": f"{username}@{tenant.slug}.example",
                        "is_staff": role == "admin",
                    },
                )
                if created:
                    user.set_password(DEMO_PASSWORD)
                    user.save()
                Membership.objects.get_or_create(user=user, defaults={"role": role})
                owner = owner or user
            for index, (title, steps) in enumerate(WORKFLOWS.items()):
                workflow, created = Workflow.objects.get_or_create(
                    name=f"{title} ({tenant.slug})",
                    defaults={
                        "owner": owner,
                        "status": Workflow.Status.ACTIVE,
                        "definition": {"steps": steps},
                    },
                )
                if created:
                    for run in range(index % 3 + 1):
                        services.run_start(workflow=workflow, input={"n": run})
