"""GET /api/audit/: a tenant admin reads their own tenant's audit log (cursor-paginated),
with the API's strict filters and cursors (workflows.filters, workflows.pagination)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins

from ameide.api_io import ModelSerializer
from tenants import selectors
from tenants.api import TenantViewSet
from tenants.models import AuditEvent
from tenants.permissions import IsTenantAdmin, IsTenantMember
from workflows.filters import MAX_ID, TEXT_SCHEMA, IdFilter, StrictFilterSet, TimestampFilter
from workflows.pagination import NewestFirstCursorPagination


class AuditEventSerializer(ModelSerializer):
    class Meta:
        model = AuditEvent
        # imported_from: the SHA-256 of the archive an event came from with `tenants import`
        # (history recorded by another database), empty for events recorded here.
        fields = [
            "id", "at", "action", "actor", "acting_as", "reason", "request_id", "details",
            "imported_from",
        ]  # fmt: skip
        read_only_fields = fields


def _text(field_name: str, lookup_expr: str = "exact"):
    return extend_schema_field(TEXT_SCHEMA)(
        django_filters.CharFilter(field_name=field_name, lookup_expr=lookup_expr, strip=False)
    )


class AuditEventFilter(StrictFilterSet):
    action = _text("action")
    action_prefix = _text("action", "startswith")
    actor = _text("actor")
    request_id = _text("request_id")
    object = _text("details__object")
    object_id = IdFilter(method="filter_object_id", min_value=1, max_value=MAX_ID)
    since = TimestampFilter(field_name="at", lookup_expr="gte")
    until = TimestampFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = [
            "action",
            "action_prefix",
            "actor",
            "request_id",
            "object",
            "object_id",
            "since",
            "until",
        ]

    def filter_object_id(self, queryset, name, value):
        return queryset.filter(details__id=value)  # an integer inside the JSON details


class NewestEventFirst(NewestFirstCursorPagination):
    ordering = ("-at", "-id")


@extend_schema(
    description="The caller's tenant's audit log, newest first. Tenant admins only "
    "(403 `role_admin_required` otherwise); never another tenant's events."
)
class AuditEventViewSet(mixins.ListModelMixin, TenantViewSet):
    """The caller's tenant's audit log, newest first; tenant admins only (403 otherwise)."""

    permission_classes = [IsTenantMember, IsTenantAdmin]
    selector = staticmethod(selectors.audit_events)
    queryset = AuditEvent.objects.none()  # for the schema only; requests read `selector`
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = NewestEventFirst
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
