"""The project's URL map plus a test-only API view that holds its request inside the database
until the test lets it go (never in production)."""

from django.db import connection
from django.urls import path
from rest_framework.decorators import api_view
from rest_framework.response import Response

from ameide.urls import urlpatterns as project_urlpatterns

HOLD_KEY = 4242


@api_view(["GET"])
def hold(request):
    """Waits for the advisory lock the test holds (a statement in progress, in the tenant's
    scope and under its statement timeout), then answers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [HOLD_KEY])
    return Response({"held": True})


@api_view(["GET"])
def timeout(request):
    """The statement timeout PostgreSQL applies to this request's statements."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        return Response({"statement_timeout": cursor.fetchone()[0]})


urlpatterns = [
    path("api/test/hold/", hold),
    path("api/test/timeout/", timeout),
    *project_urlpatterns,
]
