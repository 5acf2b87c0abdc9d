"""The project's URL map plus the test-only probe (tests/rls/probe.py); never in production."""

from ameide.urls import urlpatterns as project_urlpatterns
from tests.rls.probe import urlpatterns as probe_urlpatterns

urlpatterns = [*probe_urlpatterns, *project_urlpatterns]
