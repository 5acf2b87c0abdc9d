"""Platform console: tenants (lifecycle through services, each audited) and the audit log."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from tenants.admin_site import PlatformPermissions, is_tenant_admin
from tenants.context import current_tenant
from tenants.exceptions import LifecycleError, TenantInputError
from tenants.lifecycle.status import tenant_transition
from tenants.models import AuditEvent, Tenant
from tenants.selectors import placement_label
from tenants.services import SLUG_RE, tenant_create, tenant_update


class TenantAddForm(forms.ModelForm):
    external_id = forms.CharField(
        max_length=255,
        required=False,
        help_text="The value the identity provider's tenant claim carries. Empty: the slug.",
    )

    class Meta:
        model = Tenant
        fields = ["slug", "name", "external_id"]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if not SLUG_RE.match(slug):
            raise forms.ValidationError("Use 1-63 lowercase letters, digits and inner hyphens.")
        return slug

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("external_id") and cleaned.get("slug"):
            cleaned["external_id"] = cleaned["slug"]
        return cleaned


class TenantChangeForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "external_id"]

    def clean_external_id(self) -> str:
        value = self.cleaned_data["external_id"]
        if value != value.strip():
            raise forms.ValidationError("The external id must not start or end with spaces.")
        return value


class SoftDeleteForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the audit log.",
    )


@admin.register(Tenant)
class TenantAdmin(PlatformPermissions, admin.ModelAdmin):
    """Tenants are created, edited, suspended, reactivated and soft-deleted through services;
    the services write the audit rows, and nothing here hard-deletes a tenant (that is
    `manage.py tenants purge`)."""

    list_display = [
        "slug",
        "name",
        "external_id",
        "status",
        "placement_shown",
        "created_at",
        "act_as_link",
    ]
    list_filter = ["status", "placement"]
    search_fields = ["slug", "name", "external_id"]
    ordering = ["slug"]
    actions = ["suspend_tenants", "reactivate_tenants"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = TenantChangeForm if obj is not None else TenantAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["slug", "name", "external_id"]
        return [
            "slug",
            "name",
            "external_id",
            "status",
            "placement_shown",
            "created_at",
            "updated_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        # Placement changes only through `tenants move` (docs/placement.md): shown, never edited.
        if obj is None:
            return []
        return ["slug", "status", "placement_shown", "created_at", "updated_at"]

    @admin.display(description="placement", ordering="placement")
    def placement_shown(self, tenant: Tenant) -> str:
        return placement_label(tenant)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # only the soft-delete page, one tenant at a time
        return actions

    @admin.display(description="act as")
    def act_as_link(self, tenant: Tenant):
        if tenant.status == Tenant.Status.DELETED:
            return "-"
        url = reverse("admin:act_as", current_app=self.admin_site.name)
        return format_html('<a href="{}?tenant={}">Act as…</a>', url, tenant.pk)

    def save_model(self, request, obj, form, change):
        if change:
            stored = Tenant.objects.get(pk=obj.pk)
            saved = tenant_update(tenant=stored, name=obj.name, external_id=obj.external_id)
        else:
            saved = tenant_create(slug=obj.slug, name=obj.name, external_id=obj.external_id)
        # The admin goes on with `obj` (its message, the redirect): make it the stored row.
        obj.__dict__.update({f.attname: getattr(saved, f.attname) for f in Tenant._meta.fields})
        obj._state.adding = False
        obj._state.db = saved._state.db

    def delete_model(self, request, obj):
        raise PermissionDenied("Tenants are soft-deleted here; purge them with manage.py tenants.")

    def delete_queryset(self, request, queryset):
        raise PermissionDenied("Tenants are soft-deleted here; purge them with manage.py tenants.")

    def delete_view(self, request, object_id, extra_context=None):
        """Soft delete: the tenant's users are refused from their next request, data kept."""
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request, tenant):
            raise PermissionDenied
        form = SoftDeleteForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                tenant_transition(
                    tenant=tenant, to=Tenant.Status.DELETED, reason=form.cleaned_data["reason"]
                )
            except (LifecycleError, TenantInputError) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"Tenant {tenant.slug} was soft-deleted.")
                return HttpResponseRedirect(
                    reverse("admin:tenants_tenant_changelist", current_app=self.admin_site.name)
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Soft-delete tenant {tenant.slug}?",
            "object": tenant,
            "opts": self.opts,
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/tenant_soft_delete.html", context)

    def _transition(self, request, queryset, *, to: str, done: str) -> None:
        changed, refused = [], []
        for tenant in queryset:
            try:
                tenant_transition(tenant=tenant, to=to, reason=f"admin action by {request.user}")
            except (LifecycleError, TenantInputError) as exc:
                refused.append(str(exc))
            else:
                changed.append(tenant.slug)
        if changed:
            messages.success(request, f"{done}: {', '.join(changed)}.")
        for reason in refused:
            messages.warning(request, reason)

    @admin.action(description="Suspend selected tenants (their users are refused at once)")
    def suspend_tenants(self, request, queryset):
        self._transition(request, queryset, to=Tenant.Status.SUSPENDED, done="Suspended")

    @admin.action(description="Reactivate selected tenants")
    def reactivate_tenants(self, request, queryset):
        self._transition(request, queryset, to=Tenant.Status.ACTIVE, done="Reactivated")


class AuditTenantFilter(admin.SimpleListFilter):
    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        return [(str(t.pk), t.slug) for t in Tenant.objects.order_by("slug")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(tenant_id_value=int(value)) if value.isdigit() else queryset.none()


class AuditActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"
    LIMIT = 200

    def lookups(self, request, model_admin):
        actors = (
            AuditEvent.objects.exclude(actor="")
            .order_by("actor")
            .values_list("actor", flat=True)
            .distinct()[: self.LIMIT]
        )
        return [(actor, actor) for actor in actors]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(actor=value)


@admin.register(AuditEvent)
class AuditEventAdmin(PlatformPermissions, admin.ModelAdmin):
    """The audit log, read-only: the runtime database role cannot change it either. Platform
    admins read every tenant's; a tenant admin reads their own tenant's events only."""

    def has_module_permission(self, request) -> bool:
        return self._platform(request) or is_tenant_admin(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._platform(request) or is_tenant_admin(request)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if self._platform(request):
            return queryset
        # RLS already shows a tenant only its own rows; the filter says so in Python as well.
        return queryset.filter(tenant_id_value=current_tenant().pk)

    list_display = ["at", "action", "actor", "acting_as", "tenant_slug", "short_reason", "imported"]
    list_filter = ["action", AuditTenantFilter, AuditActorFilter]
    search_fields = ["actor", "acting_as", "action", "tenant_slug", "reason", "request_id"]
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False  # the log only grows; skip the second COUNT(*)
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="imported", boolean=True)
    def imported(self, event: AuditEvent) -> bool:
        """History another database recorded (tenants import), not an event of this one."""
        return bool(event.imported_from)

    @admin.display(description="reason")
    def short_reason(self, event: AuditEvent) -> str:
        return event.reason if len(event.reason) <= 80 else event.reason[:79] + "…"
