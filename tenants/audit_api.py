"""GET /api/audit/: a tenant admin reads their own tenant's audit log (cursor-paginated)."""

from __future__ import annotations

import django_filters
from rest_framework import mixins, serializers
from rest_framework.pagination import CursorPagination

from tenants import selectors
from tenants.api import TenantViewSet
from tenants.models import AuditEvent
from tenants.permissions import IsTenantAdmin, IsTenantMember


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "at", "action", "actor", "acting_as", "reason", "request_id", "details"]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(field_name="action")
    action_prefix = django_filters.CharFilter(field_name="action", lookup_expr="startswith")
    actor = django_filters.CharFilter(field_name="actor")
    request_id = django_filters.CharFilter(field_name="request_id")
    object = django_filters.CharFilter(field_name="details__object")
    object_id = django_filters.NumberFilter(method="filter_object_id")
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

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
        # A JSON lookup: the id is an integer in the details, not the filter's Decimal.
        return queryset.filter(details__id=int(value))


class NewestEventFirst(CursorPagination):
    ordering = ("-at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AuditEventViewSet(mixins.ListModelMixin, TenantViewSet):
    """The caller's tenant's audit log, newest first; tenant admins only (403 otherwise)."""

    permission_classes = [IsTenantMember, IsTenantAdmin]
    selector = staticmethod(selectors.audit_events)
    queryset = AuditEvent.objects.none()  # for the schema only; requests read `selector`
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    pagination_class = NewestEventFirst
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend]
