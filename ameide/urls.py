"""URL map: API, schema and docs, admin, health."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ameide.api_audit import AuditEventViewSet

urlpatterns = [
    path("api/audit/", AuditEventViewSet.as_view({"get": "list"}), name="audit-list"),
    path("api/", include("workflows.urls")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
        name="docs",
    ),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),  # login page, /oidc/ code flow, /dev-issuer/
]

# Under /api/ the answers of Django's own error views take the API's error shape.
handler400 = "ameide.api_errors.bad_request"
handler403 = "ameide.api_errors.permission_denied"
handler404 = "ameide.api_errors.page_not_found"
handler500 = "ameide.api_errors.server_error"
