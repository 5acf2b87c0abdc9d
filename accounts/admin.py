"""Admin of identity: identity providers kept in the database and the tenants each may assert;
users (platform console; a tenant admin sees their own tenant's members, read-only) and
memberships (tenant console)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from accounts.models import IdentityProvider, IdentityProviderTenant, Membership, User
from tenants.admin_site import (
    AuditedAdminMixin,
    TenantModelAdmin,
    is_platform_admin,
    is_tenant_admin,
    tenant_member_ids,
)


class PlatformAdminOnly:
    """Providers decide who may enter which tenant: only platform admins see or change them."""

    def has_module_permission(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_module_permission(request)


class IdentityProviderTenantInline(PlatformAdminOnly, admin.TabularInline):
    model = IdentityProviderTenant
    extra = 1
    verbose_name = "tenant this provider may assert"
    verbose_name_plural = "tenants this provider may assert"


@admin.register(IdentityProvider)
class IdentityProviderAdmin(PlatformAdminOnly, admin.ModelAdmin):
    list_display = ["name", "kind", "issuer", "audience", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "issuer"]
    inlines = [IdentityProviderTenantInline]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled"]}),
        ("API tokens", {"fields": ["issuer", "audience", "tenant_claim"]}),
        ("Roles", {"fields": ["roles_claim", "admin_role"]}),
        ("Browser sign-in (optional)", {"fields": ["client_id", "client_secret"]}),
    ]


@admin.register(IdentityProviderTenant)
class IdentityProviderTenantAdmin(PlatformAdminOnly, admin.ModelAdmin):
    list_display = ["provider", "tenant", "created_at"]
    list_filter = ["provider"]


# --- Users and memberships (docs/admin.md) --------------------------------------

# Permissions here come from roles (tenants.admin_site), never from groups.
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    """Platform admins manage every user. A tenant admin sees only members of their tenant,
    read-only and without fields that name other tenants (a user may belong to several)."""

    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_superuser"]
    list_filter = ["is_staff", "is_superuser", "is_active", "home_tenant"]
    search_fields = ["username", "first_name", "last_name", "email", "subject"]
    fieldsets = [
        *DjangoUserAdmin.fieldsets,
        ("Identity", {"fields": ["issuer", "subject", "home_tenant"]}),
    ]
    MEMBER_FIELDS = ["username", "first_name", "last_name", "email", "is_active", "last_login"]

    def get_queryset(self, request):
        users = super().get_queryset(request)
        if is_platform_admin(request):
            return users
        return users.filter(pk__in=tenant_member_ids())

    def has_module_permission(self, request) -> bool:
        return is_platform_admin(request) or is_tenant_admin(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return is_platform_admin(request) or is_tenant_admin(request)

    def has_add_permission(self, request) -> bool:
        return is_platform_admin(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return is_platform_admin(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        # A user's rows span tenants (memberships, owned workflows): deactivate instead.
        return False

    def get_list_display(self, request):
        return self.list_display if is_platform_admin(request) else self.MEMBER_FIELDS[:4]

    def get_list_filter(self, request):
        return self.list_filter if is_platform_admin(request) else ["is_active"]

    def get_fieldsets(self, request, obj=None):
        if is_platform_admin(request):
            return super().get_fieldsets(request, obj)
        return [(None, {"fields": self.MEMBER_FIELDS})]

    def get_actions(self, request):
        return super().get_actions(request) if is_platform_admin(request) else {}


@admin.register(Membership)
class MembershipAdmin(TenantModelAdmin):
    """Who belongs to this tenant, and as what. New users arrive through sign-in; a platform
    admin acting as the tenant may add an existing user."""

    list_display = ["user", "user_email", "role", "created_at"]
    list_filter = ["role", "created_at"]
    search_fields = ["user__username", "user__email", "user__first_name", "user__last_name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user"]
    ordering = ["user__username"]

    def member_user_fields(self, request) -> set[str]:
        # Adding a member picks among all users (platform admins only, see has_add_permission).
        return set()

    def has_add_permission(self, request) -> bool:
        return is_platform_admin(request)

    def get_readonly_fields(self, request, obj=None):
        return ["user", "created_at"] if obj is not None else ["created_at"]

    @admin.display(description="e-mail", ordering="user__email")
    def user_email(self, membership: Membership) -> str:
        return membership.user.email
