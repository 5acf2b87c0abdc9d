"""Helpers of the `manage.py tenants` tests: calling the command, a tenant's content in
id-free terms, and a snapshot of everything a command could write (to prove nothing was)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import Membership, User
from tenants.context import tenant_context
from tenants.lifecycle.tables import tenant_tables
from tenants.models import AuditEvent, Tenant
from workflows.models import Workflow, WorkflowRun


class Terminal(io.StringIO):
    """A stream that says it is a terminal (what a person's shell gives the command)."""

    def isatty(self) -> bool:
        return True


def tenants(*args: str, stdout=None, stderr=None) -> tuple[str, str]:
    out, err = stdout or io.StringIO(), stderr or io.StringIO()
    call_command("tenants", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str, match: str) -> None:
    with pytest.raises(CommandError, match=match) as exc:
        tenants(*args)
    assert exc.value.returncode != 0


def database_state() -> dict:
    """Everything a command could write: tenants, users, audit rows and every tenant's rows."""
    rows = {}
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            for table in tenant_tables():
                rows[(tenant.slug, table.label)] = sorted(
                    table.model.objects.values_list("pk", flat=True)
                )
    return {
        "tenants": sorted(Tenant.objects.values_list("slug", "external_id", "status", "name")),
        "users": sorted(User.objects.values_list("username", "home_tenant_id")),
        # Break-glass records commit before the work they cover, so they outlive its rollback.
        "audit": AuditEvent.objects.exclude(action="unscoped").count(),
        "rows": rows,
    }


def make_member(*, tenant, username: str, role: str = "member") -> User:
    # No password: hashing one costs a noticeable part of a second per user.
    user = User.objects.create_user(username=username, home_tenant=tenant)
    with tenant_context(tenant):
        Membership.objects.create(user=user, role=role)
    return user


def content(tenant: Tenant) -> dict:
    """A tenant's data in terms that survive a change of ids (names, not keys)."""
    with tenant_context(tenant):
        return {
            "memberships": sorted(
                (m.user.username, m.role, m.created_at) for m in Membership.objects.all()
            ),
            "workflows": sorted(
                (
                    w.name,
                    w.description,
                    json.dumps(w.definition, sort_keys=True),
                    w.status,
                    w.owner.username if w.owner else None,
                    w.created_at,
                    w.updated_at,
                )
                for w in Workflow.objects.all()
            ),  # fmt: skip
            "runs": sorted(
                (
                    r.workflow.name,
                    r.status,
                    json.dumps(r.input),
                    json.dumps(r.output),
                    r.started_at.isoformat() if r.started_at else "",
                    r.created_at,
                )
                for r in WorkflowRun.objects.all()
            ),  # fmt: skip
        }


def last_event(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def export(slug: str, path) -> dict:
    """`tenants export SLUG --output PATH --json`, its summary."""
    return json.loads(tenants("export", slug, "--output", str(path), "--json")[0])


def import_(path, *args: str) -> dict:
    """`tenants import PATH --json ARGS`, its summary."""
    return json.loads(tenants("import", str(path), "--json", *args)[0])


def ids_of(tenant: Tenant) -> dict:
    """The ids of the tenant's rows, by kind (what an import keeps)."""
    with tenant_context(tenant):
        return {
            "memberships": sorted(Membership.objects.values_list("pk", flat=True)),
            "workflows": sorted(Workflow.objects.values_list("pk", flat=True)),
            "runs": sorted(WorkflowRun.objects.values_list("pk", "workflow_id")),
        }
