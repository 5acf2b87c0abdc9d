"""Roles in the workflows API: viewers read; members create, and change and run the workflows
they own; admins also delete, and change or run anyone's. Refusals are 403 with a code."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import Membership
from workflows.errors import RoleRefused
from workflows.models import Workflow, WorkflowRun

RULES = (
    "Roles (per membership): `viewer` reads only; `member` creates workflows and changes, runs, "
    "cancels, retries and approves runs of the workflows they own; `admin` may also do so for "
    "anyone's workflows and is the only role that deletes workflows. A refusal is 403 with "
    '`{"detail": ..., "code": "role_read_only" | "role_not_owner" | "role_admin_required"}` '
    "and writes nothing."
)


def role_of(request) -> str:
    principal = request.auth
    if principal.membership is None:
        return Membership.Role.ADMIN  # a platform admin acting as the tenant (audited)
    return principal.membership.role


def _refuse(detail: str, code: str) -> RoleRefused:
    return RoleRefused(detail, code)


class WorkflowRolePermission(BasePermission):
    """Checks the role before the view writes anything (object checks after the 404 check)."""

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        if role_of(request) == Membership.Role.VIEWER:
            raise _refuse("Viewers can only read.", "role_read_only")
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        role = role_of(request)
        if role == Membership.Role.ADMIN:
            return True
        if request.method == "DELETE":
            raise _refuse("Only a tenant admin deletes workflows.", "role_admin_required")
        workflow: Workflow = obj.workflow if isinstance(obj, WorkflowRun) else obj
        if workflow.owner_id != request.user.pk:
            raise _refuse("Members change and run only the workflows they own.", "role_not_owner")
        return True


class IsTenantAdmin(BasePermission):
    """Tenant admins only (the audit log); others get 403 with a code."""

    def has_permission(self, request, view) -> bool:
        if role_of(request) != Membership.Role.ADMIN:
            raise _refuse("Only a tenant admin reads the audit log.", "role_admin_required")
        return True
