"""Admin of identity: identity providers kept in the database and the tenants each may assert;
users (platform console; a tenant admin sees their own tenant's members, read-only) and
memberships (tenant console)."""

from django import forms
from django.contrib import admin
from django.contrib.admin.options import LOOKUP_SEP
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from accounts.models import IdentityProvider, IdentityProviderTenant, Membership, User
from accounts.services import membership_add
from tenants.admin_site import (
    AuditedAdminMixin,
    PlatformModelAdmin,
    PlatformPermissions,
    TenantModelAdmin,
    is_platform_admin,
    is_tenant_admin,
    tenant_member_ids,
)
from tenants.context import current_tenant


class IdentityProviderForm(forms.ModelForm):
    """The client secret is write-only: never rendered back, kept when left empty."""

    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave empty to keep the current secret.",
    )

    class Meta:
        model = IdentityProvider
        fields = [
            "name", "kind", "enabled", "issuer", "audience", "tenant_claim", "roles_claim",
            "admin_role", "client_id", "client_secret",
        ]  # fmt: skip

    def clean_client_secret(self):
        value = self.cleaned_data.get("client_secret") or ""
        return value or (self.instance.client_secret if self.instance.pk else "")


class IdentityProviderTenantInline(PlatformPermissions, admin.TabularInline):
    model = IdentityProviderTenant
    extra = 1
    verbose_name = "tenant this provider may assert"
    verbose_name_plural = "tenants this provider may assert"


# Providers decide who may enter which tenant: platform admins only, every change audited.
@admin.register(IdentityProvider)
class IdentityProviderAdmin(PlatformModelAdmin):
    form = IdentityProviderForm
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
class IdentityProviderTenantAdmin(PlatformModelAdmin):
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
    # Django's form without groups and per-user permissions: rights here come from
    # is_superuser and the role in a tenant, so those fields would change nothing.
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name", "email"]}),
        ("Rights", {"fields": ["is_active", "is_staff", "is_superuser"]}),
        ("Important dates", {"fields": ["last_login", "date_joined"]}),
        ("Identity", {"fields": ["issuer", "subject", "home_tenant"]}),
    ]
    filter_horizontal = ()
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

    def lookup_allowed(self, lookup, value, request=None):
        # A tenant admin filters only by what their list shows: a lookup on home_tenant,
        # issuer or is_staff would tell them about a member's other tenants.
        if is_platform_admin(request):
            return super().lookup_allowed(lookup, value, request)
        return lookup.split(LOOKUP_SEP)[0] in self.get_list_filter(request)

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

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new member goes through the service, which also gives a user without a home
        # tenant this one (else a tenant admin added here could not enter the admin).
        added = membership_add(tenant=current_tenant(), user=obj.user, role=obj.role)
        obj.pk, obj.tenant, obj.created_at = added.pk, added.tenant, added.created_at

    @admin.display(description="e-mail", ordering="user__email")
    def user_email(self, membership: Membership) -> str:
        return membership.user.email
