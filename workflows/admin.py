"""Tenant console for the product: workflows and their runs, scoped to the current tenant."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from tenants.admin_site import TenantModelAdmin, TenantTabularInline
from workflows import services
from workflows.models import Workflow, WorkflowRun


class WorkflowRunInline(TenantTabularInline):
    model = WorkflowRun
    fields = ["status", "started_at", "finished_at", "created_at"]
    readonly_fields = ["created_at"]
    extra = 0
    show_change_link = True
    ordering = ["-created_at"]


@admin.register(Workflow)
class WorkflowAdmin(TenantModelAdmin):
    list_display = ["name", "status", "owner", "run_count", "created_at"]
    list_filter = ["status", "owner", "created_at"]
    search_fields = ["name", "description"]
    date_hierarchy = "created_at"
    autocomplete_fields = ["owner"]
    # Not a join with the users (an empty tuple, or Django joins the `owner` of list_display):
    # Citus cannot plan it, nor can it reach them from a dedicated database
    # (workflows.selectors.workflow_list); prefetched below instead.
    list_select_related = ()
    ordering = ["-created_at", "-id"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [WorkflowRunInline]

    def get_queryset(self, request):
        # Runs of a workflow are its tenant's by the composite key (and RLS), so the join
        # counts nothing of another tenant.
        queryset = super().get_queryset(request).annotate(run_count=Count("runs"))
        return queryset.prefetch_related("owner")

    @admin.display(description="runs", ordering="run_count")
    def run_count(self, workflow: Workflow) -> int:
        return workflow.run_count


@admin.register(WorkflowRun)
class WorkflowRunAdmin(TenantModelAdmin):
    list_display = ["__str__", "workflow", "status", "created_at", "finished_at"]
    list_filter = ["status", "workflow", "created_at"]
    search_fields = ["workflow__name", "status"]
    raw_id_fields = ["workflow"]
    list_select_related = ["workflow"]
    ordering = ["-created_at", "-id"]
    readonly_fields = ["created_at"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and obj.status == WorkflowRun.Status.QUEUED:
            services.enqueue(run=obj)  # a run added here is executed like one from the API
