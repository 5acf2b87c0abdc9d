"""Query filters of the workflows API (django-filter); all run inside the tenant's rows."""

from __future__ import annotations

import django_filters

from workflows.models import Workflow, WorkflowRun


class WorkflowFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Workflow
        fields = ["status", "name", "created_after", "created_before"]


class WorkflowRunFilter(django_filters.FilterSet):
    # ModelChoiceFilter's queryset is built at import time and resolved per request (tenant).
    workflow = django_filters.ModelChoiceFilter(queryset=Workflow.objects.all())

    class Meta:
        model = WorkflowRun
        fields = ["status", "workflow"]
