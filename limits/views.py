"""GET /metrics: Prometheus exposition, for the scraper holding METRICS_TOKEN.

Served by a middleware in front of sign-in (like /healthz): the scraper's bearer token is not
a user's token, and reading metrics touches no tenant.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from limits.metrics import exposition


def metrics(request: HttpRequest) -> HttpResponse:
    # Tenant slugs are labels: only the scraper may read them. No token set: no endpoint.
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponse("Not Found", status=404, content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/metrics":
            return metrics(request)
        return self.get_response(request)
