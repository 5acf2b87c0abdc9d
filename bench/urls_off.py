"""Benchmark only (bench.settings_off): the workflows list without tenancy, and a static body."""

from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponse
from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from tenants.context import tenant_context
from tenants.models import Tenant
from workflows.models import Workflow
from workflows.selectors import LIST_COLUMNS
from workflows.views import WorkflowViewSet

_STATIC_BODY = Path(settings.BENCH_STATIC_BODY).read_bytes()


def _single_tenant_workflows() -> QuerySet:
    # What an application without a tenancy layer writes: a plain queryset and its own filter,
    # reading the same columns as the tenant-aware list (workflows.selectors).
    return (
        QuerySet(model=Workflow)
        .filter(tenant_id=settings.BENCH_TENANT_ID)
        .select_related("owner")
        .only(*LIST_COLUMNS)
    )


class _UnscopedWorkflowViewSet(WorkflowViewSet):
    """The production viewset, serializer, filters and pagination over a plain queryset."""

    selector = staticmethod(_single_tenant_workflows)
    # No caller, so no roles either (workflows.permissions needs a tenant member).
    permission_classes = (AllowAny,)

    def dispatch(self, request, *args, **kwargs):
        # The models' joins through tenant keys compile the tenant into their ON clause
        # (tenants.scoping) and refuse to compile without one. Setting the contextvar costs
        # nanoseconds and no query, and the SQL is then the tenant-aware side's.
        with tenant_context(Tenant(pk=settings.BENCH_TENANT_ID)):
            return super().dispatch(request, *args, **kwargs)


def static_workflows(request):
    """The same 50 rows, serialized once at start-up: Django's ceiling on this machine."""
    return HttpResponse(_STATIC_BODY, content_type="application/json")


router = SimpleRouter()
router.register("workflows", _UnscopedWorkflowViewSet, basename="workflow")

urlpatterns = [
    path("api/", include(router.urls)),
    path("bench/static/", static_workflows),
]
