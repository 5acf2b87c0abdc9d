"""The admin app with the tenancy-aware site (tenants.admin_site) as Django's default `admin.site`."""

from django.contrib.admin.apps import AdminConfig


class TenantAdminConfig(AdminConfig):
    """Every `admin.site.register` / `@admin.register` lands on the TenantAdminSite."""

    default_site = "tenants.admin_site.TenantAdminSite"
