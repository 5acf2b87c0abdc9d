"""Test-only probe views: what a request sees of its tenant, in Python and in PostgreSQL.

Mounted only by tests/rls/probe_urls.py, which only tests/rls/probe_settings.py (a settings
module used by the test servers) and tests marked `urls("tests.rls.probe_urls")` load. The
production URL map never includes it.

Every probe compares, inside the request: the tenant the client's credential belongs to (the
`X-Expect-Tenant` header the test sends, "" for anonymous), the principal's tenant, the
context's tenant, the tenant PostgreSQL's policies accept (`ameide_private.scope_id('t')`, the
verified signed scope) as the request's statements see it, and
the tenants of the rows a raw query returns. The verdict is counted in this process (one
gunicorn worker), also for requests that then raise on purpose (`?boom=python|sql`).
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter

from django.db import connection, transaction
from django.http import JsonResponse, StreamingHttpResponse
from django.urls import path

from accounts import admission_cache
from tenants.context import current_tenant_or_none
from tenants.exceptions import TenantNotSet
from workflows.models import Workflow

_lock = threading.Lock()
TALLY: Counter = Counter()  # checked, mismatches, dirty_start
ON_COMMIT_SEEN: list[dict] = []  # what on_commit callbacks saw (in-process tests read it)

_SEEN_SQL = (
    "SELECT ameide_private.scope_id('t')::text, pg_backend_pid(), current_user, "
    "(SELECT coalesce(array_agg(DISTINCT tenant_id ORDER BY tenant_id), '{}') "
    "FROM workflows_workflow)"
)


def _start_value() -> str | None:
    """The setting as the session holds it before the backend sets anything: read on the raw
    psycopg connection, which bypasses the tenant backend."""
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.scope', true)")
        return cursor.fetchone()[0]


def seen_by_a_statement() -> dict:
    """What a statement of this request sees, through the backend."""
    with connection.cursor() as cursor:
        cursor.execute(_SEEN_SQL)
        setting, pid, role, tenants = cursor.fetchone()
    try:
        orm = sorted(set(Workflow.objects.values_list("tenant_id", flat=True)))
    except TenantNotSet:
        orm = "TenantNotSet"
    return {"setting": setting, "pid": pid, "role": role, "raw": tenants, "orm": orm}


def verdict(*, expected: str, principal: str, context: str, seen: dict) -> bool:
    """True when the credential, principal, context, setting and rows all name one tenant."""
    tenant_ids = [int(expected)] if expected else []
    orm_ok = seen["orm"] == tenant_ids if expected else seen["orm"] == "TenantNotSet"
    return (
        principal == expected
        and context == expected
        and (seen["setting"] or "") == expected
        and all(t in tenant_ids for t in seen["raw"])
        and orm_ok
    )


def _count(*, ok: bool, start: str | None) -> None:
    with _lock:
        TALLY["checked"] += 1
        TALLY["mismatches"] += 0 if ok else 1
        TALLY["dirty_start"] += 1 if start else 0


def _ids(request) -> tuple[str, str, str]:
    principal = getattr(request, "principal", None)
    context = current_tenant_or_none()
    return (
        request.headers.get("X-Expect-Tenant", ""),
        str(principal.tenant.pk) if principal else "",
        str(context.pk) if context else "",
    )


def state(request):
    """The request's view of its tenant; `rogue=<id>` leaves a session-level setting behind,
    `boom=python` raises after the check, `boom=sql` breaks the transaction, then raises."""
    start = _start_value()
    expected, principal, context = _ids(request)
    seen = seen_by_a_statement()
    ok = verdict(expected=expected, principal=principal, context=context, seen=seen)
    _count(ok=ok, start=start)
    if request.GET.get("rogue"):
        # Leave a value at session level: the one given, or (rogue=self) this request's own
        # signed scope, the most a request could copy and leave for the next one.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('app.scope', CASE WHEN %s = 'self' THEN "
                "current_setting('app.scope') ELSE %s END, false)",
                [request.GET["rogue"], request.GET["rogue"]],
            )
    boom = request.GET.get("boom")
    if boom == "sql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    if boom == "python":
        raise RuntimeError("probe: failing on purpose, mid-view")
    return JsonResponse(
        {
            "ok": ok,
            "start": start,
            "expected": expected,
            "principal": principal,
            "context": context,
            **seen,
            "disable_server_side_cursors": connection.settings_dict.get(
                "DISABLE_SERVER_SIDE_CURSORS", False
            ),
            "conn_max_age": connection.settings_dict.get("CONN_MAX_AGE"),
            "thread": threading.get_ident(),
            "worker": os.getpid(),
            "cached_principals": len(admission_cache.cache() or ()),
            "via": getattr(getattr(request, "principal", None), "via", ""),
        }
    )


def stream(request):
    """A streaming body whose chunks query the database after the view has returned (and after
    ATOMIC_REQUESTS' transaction has ended)."""
    expected, principal, _ = _ids(request)

    def chunks():
        for number in range(3):
            context = current_tenant_or_none()
            seen = seen_by_a_statement()
            ok = verdict(
                expected=expected,
                principal=principal,
                context=str(context.pk) if context else "",
                seen=seen,
            )
            _count(ok=ok, start=None)
            yield json.dumps({"chunk": number, "ok": ok, **seen}) + "\n"

    return StreamingHttpResponse(chunks(), content_type="application/x-ndjson")


def on_commit(request):
    """Registers a callback that queries the database once the request's transaction commits."""
    expected, principal, _ = _ids(request)

    def after_commit():
        context = current_tenant_or_none()
        seen = seen_by_a_statement()
        ok = verdict(
            expected=expected,
            principal=principal,
            context=str(context.pk) if context else "",
            seen=seen,
        )
        _count(ok=ok, start=None)
        ON_COMMIT_SEEN.append({"ok": ok, "in_atomic": connection.in_atomic_block, **seen})

    transaction.on_commit(after_commit)
    return JsonResponse({"registered": True})


def tally(request):
    with _lock:
        return JsonResponse(dict(TALLY))


urlpatterns = [
    path("probe/state/", state),
    path("probe/stream/", stream),
    path("probe/on-commit/", on_commit),
    path("probe/tally/", tally),
]
