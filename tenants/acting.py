"""Acting as a tenant: a platform admin's explicit, reasoned and audited entry into one tenant.

The state lives in the admin session (one tenant and a reason). It applies to admin pages
only (accounts.principal builds the principal from it there), so a platform admin's session
never reaches a tenant's API as that tenant. Starting and stopping each write an AuditEvent
in the request's transaction; while it is active, every audit row of the admin's requests
names the tenant in `acting_as` (tenants.middleware).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from tenants.audit import record_event
from tenants.exceptions import ActingRefused
from tenants.models import Tenant

SESSION_ACTING_KEY = "ameide_acting_as"
REASON_MAX_LENGTH = 500


@dataclass(frozen=True, slots=True)
class ActingAs:
    """The tenant a platform admin is acting as, why, and since when (ISO 8601)."""

    tenant: Tenant
    reason: str
    started_at: str


def admin_path_prefix() -> str:
    """The URL prefix of the admin site ("/admin/"), or "" when no admin is mounted."""
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return ""


def is_admin_request(request: HttpRequest) -> bool:
    prefix = admin_path_prefix()
    return bool(prefix) and request.path.startswith(prefix)


def acting_as_of(*, request: HttpRequest) -> ActingAs | None:
    """The session's act-as state, if its user is a platform admin and the tenant still exists.

    A deleted (or vanished) tenant ends the state: the admin must choose again.
    """
    user = getattr(request, "user", None)
    state = request.session.get(SESSION_ACTING_KEY)
    if not state or user is None or not getattr(user, "is_platform_admin", False):
        return None
    tenant = Tenant.objects.filter(pk=state.get("tenant_id")).first()
    if tenant is None or tenant.status == Tenant.Status.DELETED:
        request.session.pop(SESSION_ACTING_KEY, None)
        return None
    return ActingAs(tenant=tenant, reason=state.get("reason", ""), started_at=state.get("at", ""))


def act_as_start(*, request: HttpRequest, tenant: Tenant, reason: str) -> ActingAs:
    """Begin acting as `tenant`; ends (and audits the end of) any act-as already active."""
    user = request.user
    if not getattr(user, "is_platform_admin", False):
        raise ActingRefused("Only platform administrators can act as a tenant.")
    reason = (reason or "").strip()
    if not reason:
        raise ActingRefused("Acting as a tenant needs a reason.")
    if len(reason) > REASON_MAX_LENGTH:
        raise ActingRefused(f"The reason is longer than {REASON_MAX_LENGTH} characters.")
    if tenant.status == Tenant.Status.DELETED:
        raise ActingRefused("A deleted tenant cannot be entered.")
    with transaction.atomic():
        act_as_stop(request=request, why="switched tenant")
        record_event(
            action="act_as.start",
            actor=user.get_username(),
            tenant=tenant,
            reason=reason,
            details={"tenant_status": tenant.status},
        )
    state = {"tenant_id": tenant.pk, "reason": reason, "at": timezone.now().isoformat()}
    request.session[SESSION_ACTING_KEY] = state
    return ActingAs(tenant=tenant, reason=reason, started_at=state["at"])


def act_as_stop(*, request: HttpRequest, why: str = "") -> ActingAs | None:
    """End acting as a tenant (no-op when not acting); returns what was ended."""
    current = acting_as_of(request=request)
    request.session.pop(SESSION_ACTING_KEY, None)
    if current is None:
        return None
    record_event(
        action="act_as.stop",
        actor=request.user.get_username(),
        tenant=current.tenant,
        reason=current.reason,
        details={"started_at": current.started_at, "why": why} if why else {},
    )
    return current
