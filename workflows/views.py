"""DRF viewsets of the workflows API: thin, they call selectors and services."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from ameide.api_errors import Conflict, ErrorSerializer
from tenants.api import TenantViewSet
from tenants.permissions import IsTenantMember
from workflows import selectors, services
from workflows.errors import DuplicateName
from workflows.filters import RunStatusFilter, WorkflowFilter, WorkflowRunFilter
from workflows.models import Workflow, WorkflowRun
from workflows.permissions import RULES, WorkflowRolePermission
from workflows.serializers import (
    MeSerializer,
    RunApprovalSerializer,
    WorkflowRunCreateSerializer,
    WorkflowRunSerializer,
    WorkflowSerializer,
)

DUPLICATE_NAME = "A workflow with this name already exists."
NAME_TAKEN = {
    status.HTTP_409_CONFLICT: OpenApiResponse(
        ErrorSerializer, description="The tenant has a workflow of that name (`duplicate_name`)."
    )
}


def duplicate_name() -> Conflict:
    return Conflict(DUPLICATE_NAME, code="duplicate_name", errors={"name": [DUPLICATE_NAME]})


RUN_STATE = {
    status.HTTP_409_CONFLICT: OpenApiResponse(
        ErrorSerializer, description="The run's state does not allow it (`run_state_conflict`)."
    )
}
# The role rules, in the OpenAPI description of every operation that writes.
_WRITES = extend_schema(description=RULES)


@extend_schema_view(create=_WRITES, update=_WRITES, partial_update=_WRITES, destroy=_WRITES)
class WorkflowViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantViewSet,
):
    """Workflows of the caller's tenant."""

    permission_classes = [IsTenantMember, WorkflowRolePermission]
    selector = staticmethod(selectors.workflow_list)
    serializer_class = WorkflowSerializer
    filterset_class = WorkflowFilter
    ordering_fields = ["created_at", "updated_at", "name"]

    @extend_schema(responses={status.HTTP_201_CREATED: WorkflowSerializer, **NAME_TAKEN})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            workflow = services.workflow_create(owner=request.user, **serializer.validated_data)
        except DuplicateName:
            raise duplicate_name() from None
        return Response(self.get_serializer(workflow).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={status.HTTP_200_OK: WorkflowSerializer, **NAME_TAKEN})
    def update(self, request, pk=None, partial=False):
        workflow = self.get_object()
        serializer = self.get_serializer(workflow, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        try:
            workflow = services.workflow_update(workflow=workflow, **serializer.validated_data)
        except DuplicateName:
            raise duplicate_name() from None
        return Response(self.get_serializer(workflow).data)

    @extend_schema(responses={status.HTTP_200_OK: WorkflowSerializer, **NAME_TAKEN})
    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def perform_destroy(self, instance):
        services.workflow_delete(workflow=instance)

    def filter_queryset(self, queryset):
        if self.action == "runs" and queryset.model is Workflow:
            # The workflow of /{id}/runs/ is looked up unfiltered: the query's filters and
            # ordering are the runs' (`?status=queued`), not the workflow's.
            return queryset
        return super().filter_queryset(queryset)

    @extend_schema(
        methods=["GET"],
        responses=WorkflowRunSerializer(many=True),
        # The lookup of the workflow would make the filter introspection document the
        # workflow's filters: the runs' own are spelled out instead.
        filters=False,
        parameters=[
            OpenApiParameter("status", enum=WorkflowRun.Status.values, description="Run status."),
            OpenApiParameter(
                "ordering",
                enum=["created_at", "-created_at"],
                description="Sort by this field; a leading `-` sorts descending.",
            ),
        ],
    )
    @extend_schema(
        methods=["POST"],
        request=WorkflowRunCreateSerializer,
        responses={status.HTTP_201_CREATED: WorkflowRunSerializer},
        description=RULES,
    )
    @action(
        detail=True,
        methods=["get", "post"],
        serializer_class=WorkflowRunSerializer,
        filterset_class=RunStatusFilter,
        ordering_fields=["created_at"],
    )
    def runs(self, request, pk=None):
        workflow = self.get_object()
        if request.method == "POST":
            body = WorkflowRunCreateSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            run = services.run_start(workflow=workflow, **body.validated_data)
            return Response(WorkflowRunSerializer(run).data, status=status.HTTP_201_CREATED)
        runs = self.filter_queryset(selectors.run_list(workflow=workflow))
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(WorkflowRunSerializer(page, many=True).data)


@extend_schema_view(create=_WRITES)
class WorkflowRunViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantViewSet,
):
    """Runs of the caller's tenant; POST takes the workflow id in the body."""

    permission_classes = [IsTenantMember, WorkflowRolePermission]
    selector = staticmethod(selectors.run_list)
    serializer_class = WorkflowRunSerializer
    filterset_class = WorkflowRunFilter
    ordering_fields = ["created_at"]

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.check_object_permissions(request, serializer.validated_data["workflow"])
        run = services.run_start(
            workflow=serializer.validated_data["workflow"],
            input=serializer.validated_data.get("input"),
        )
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, responses={200: WorkflowRunSerializer, **RUN_STATE}, description=RULES
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or waiting run now, or ask a running one to stop at its next step."""
        run = services.run_cancel(run=self.get_object())
        return Response(self.get_serializer(run).data)

    @extend_schema(
        request=None, responses={201: WorkflowRunSerializer, **RUN_STATE}, description=RULES
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a new run with the same input as this failed or cancelled one."""
        run = services.run_retry(run=self.get_object())
        return Response(self.get_serializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=RunApprovalSerializer,
        responses={200: WorkflowRunSerializer, **RUN_STATE},
        description=RULES,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Give the approval a waiting run asks for; the run is queued again to go on."""
        run = self.get_object()
        body = RunApprovalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.run_approve(
            run=run, approval=body.validated_data["approval"], by=request.user.get_username()
        )
        return Response(self.get_serializer(run).data)


class MeView(APIView):
    """The caller and the tenant their request runs in."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        principal = request.auth
        return Response(
            {
                "user": {
                    "id": request.user.pk,
                    "username": request.user.username,
                    "email": request.user.email,
                    "name": request.user.get_full_name(),
                },
                "tenant": {
                    "id": principal.tenant.pk,
                    "slug": principal.tenant.slug,
                    "name": principal.tenant.name,
                },
                "role": principal.membership.role,
            }
        )
