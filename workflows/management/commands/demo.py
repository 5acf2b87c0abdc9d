"""`manage.py demo`: two tenants, their users (local passwords) and some workflows; idempotent."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, User
from tenants.audit import acting
from tenants.context import tenant_context
from tenants.models import Tenant
from workflows.models import Workflow, WorkflowRun

DEMO_PASSWORD = "demo"
TENANTS = {
    "acme": ("Acme Corporation", [("alice", "admin"), ("arthur", "member")]),
    "globex": ("Globex Inc.", [("gina", "admin"), ("gus", "member")]),
}
WORKFLOWS = ["Onboard customer", "Approve invoice", "Nightly report", "Rotate keys", "Offboard"]


class Command(BaseCommand):
    help = "Load the demo: tenants acme and globex, their users and workflows (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        with acting(name="cli:demo"):
            admin, created = User.objects.get_or_create(
                username="admin", defaults={"is_staff": True, "is_superuser": True}
            )
            if created:
                admin.set_password("admin")
                admin.save()
            for slug, (name, people) in TENANTS.items():
                tenant, _ = Tenant.objects.get_or_create(
                    slug=slug, defaults={"name": name, "external_id": slug}
                )
                self._load_tenant(tenant, people)
        self.stdout.write("demo: tenants acme, globex; users alice, arthur (acme), gina, gus")
        self.stdout.write(
            f"      (globex) with password '{DEMO_PASSWORD}'; platform admin admin/admin"
        )

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
            for index, title in enumerate(WORKFLOWS):
                workflow, created = Workflow.objects.get_or_create(
                    name=f"{title} ({tenant.slug})",
                    defaults={
                        "owner": owner,
                        "status": Workflow.Status.ACTIVE,
                        "definition": {"steps": ["start", "work", "finish"]},
                    },
                )
                if created:
                    for run in range(index % 3 + 1):
                        WorkflowRun.objects.create(workflow=workflow, input={"n": run})
