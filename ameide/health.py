"""/healthz (the process answers) and /readyz (the database answers), before any session work."""

from __future__ import annotations

from django.db import connections
from django.http import JsonResponse

RETRY_AFTER_SECONDS = "5"


def database_ready() -> tuple[bool, str]:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready"; the reason is for operators
        return False, type(exc).__name__
    return True, "ok"


class HealthMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            ready, detail = database_ready()
            if ready:
                return JsonResponse({"status": "ready", "database": detail})
            response = JsonResponse({"status": "unavailable", "database": detail}, status=503)
            response["Retry-After"] = RETRY_AFTER_SECONDS
            return response
        return self.get_response(request)
