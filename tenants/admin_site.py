"""The admin site: one tenant per page, model permissions by role, and acting as a tenant.

Who sees what:
- a tenant admin (is_staff and the `admin` role in the request's tenant) gets every
  permission on the tenant models' admins (TenantModelAdmin), scoped by the tenant manager
  to their tenant; other admins give them nothing, because they hold no Django permissions;
- a platform admin (is_superuser) manages the global models, and browses a tenant's data only
  while acting as that tenant (tenants.acting): without it, tenant-model pages explain how to
  choose a tenant instead of failing.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import update_wrapper
from urllib.parse import urlencode

from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import NotRelationField, get_fields_from_path
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from tenants.acting import REASON_MAX_LENGTH, act_as_start, act_as_stop
from tenants.audit import record_event
from tenants.context import current_tenant_or_none, no_tenant
from tenants.exceptions import ActingRefused, TenantNotSet
from tenants.models import Tenant, TenantModel


def is_platform_admin(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_platform_admin)


def is_tenant_admin(request: HttpRequest) -> bool:
    """A user whose role in the request's tenant (checked this request) is `admin`."""
    user = getattr(request, "user", None)
    principal = getattr(request, "principal", None)
    if user is None or principal is None or not user.is_authenticated:
        return False
    return (
        principal.is_tenant_admin
        and principal.user.pk == user.pk
        and user.is_active
        and principal.tenant == current_tenant_or_none()
    )


def is_tenant_model(model) -> bool:
    return isinstance(model, type) and issubclass(model, TenantModel)


def tenant_member_ids() -> QuerySet:
    """Ids of the current tenant's members, as a subquery scoped when it is compiled."""
    membership = apps.get_model(settings.TENANCY_MEMBERSHIP_MODEL)
    return membership.objects.values("user_id")


class TenantModelForm(forms.ModelForm):
    """A form of a tenant model that validates its tenant-leading unique constraints.

    `tenant` is not a form field, so Django would skip every constraint that names it (and a
    duplicate would reach the database as an IntegrityError): the row gets the current tenant
    before validation instead, and the check runs inside it.
    """

    def _get_validation_exclusions(self):
        exclusions = super()._get_validation_exclusions()
        exclusions.discard("tenant")
        return exclusions

    def _post_clean(self):
        if self.instance.tenant_id is None and current_tenant_or_none() is not None:
            self.instance.tenant = current_tenant_or_none()
        super()._post_clean()


def audit_admin_write(
    request: HttpRequest, *, action: str, objects, model, changed: list[str] | None = None
) -> None:
    """One AuditEvent for an admin add/change/delete, in the request's transaction; `changed`
    names the form fields that changed (names only: never a value, secret or not)."""
    objects = list(objects)
    tenant = current_tenant_or_none()
    if tenant is None and model is Tenant and len(objects) == 1:
        tenant = objects[0]
    record_event(
        action=action,
        tenant=tenant,
        details={
            "model": model._meta.label,
            "objects": [{"id": str(obj.pk), "repr": str(obj)[:200]} for obj in objects[:100]],
            "count": len(objects),
            **({"changed": sorted(changed)} if changed is not None else {}),
        },
    )


class AuditedAdminMixin:
    """Every add, change and delete made in this admin also writes an AuditEvent."""

    def construct_change_message(self, request, form, formsets, add=False):
        # The names of the fields the form changed, for the audit row log_change() writes.
        request._audit_changed = list(getattr(form, "changed_data", []))
        return super().construct_change_message(request, form, formsets, add)

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        audit_admin_write(
            request,
            action="admin.add",
            objects=[obj],
            model=self.model,
            changed=getattr(request, "_audit_changed", None),
        )
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        audit_admin_write(
            request,
            action="admin.change",
            objects=[obj],
            model=self.model,
            changed=getattr(request, "_audit_changed", None),
        )
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        audit_admin_write(request, action="admin.delete", objects=queryset, model=self.model)
        return entries


class TenantScopedPermissions:
    """Model permissions by role: platform admins, and tenant admins of the current tenant."""

    def may_manage(self, request: HttpRequest) -> bool:
        return is_platform_admin(request) or is_tenant_admin(request)

    def has_module_permission(self, request) -> bool:
        return self.may_manage(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.may_manage(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return self.may_manage(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self.may_manage(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.may_manage(request)


class GlobalModelChoiceField(forms.ModelChoiceField):
    """A platform admin's choice of a global row (e.g. any user, to add as a member while
    acting as a tenant): looked up in the global scope, where the database shows every row."""

    def to_python(self, value):
        with no_tenant():
            return super().to_python(value)


class TenantRelatedChoices:
    """Choices of foreign keys to users are the current tenant's members.

    Keys to other tenant models need nothing: their managers scope the choices when the query
    is compiled. Users are global, so their choices are narrowed here, in forms, in the
    autocomplete view (TenantAutocompleteJsonView) and in list filters.
    """

    def member_user_fields(self, request) -> set[str]:
        user_model = get_user_model()
        return {
            field.name
            for field in self.model._meta.get_fields()
            if field.many_to_one and field.related_model is user_model
        }

    def scope_related_queryset(self, request, db_field, queryset: QuerySet) -> QuerySet:
        if db_field.name in self.member_user_fields(request):
            return queryset.filter(pk__in=tenant_member_ids())
        return queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if (
            is_platform_admin(request)
            and not is_tenant_model(db_field.related_model)
            and db_field.name not in self.member_user_fields(request)
        ):
            kwargs.setdefault("form_class", GlobalModelChoiceField)
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self.scope_related_queryset(request, db_field, formfield.queryset)
        return formfield


class TenantModelAdmin(
    AuditedAdminMixin, TenantScopedPermissions, TenantRelatedChoices, admin.ModelAdmin
):
    """Base of every ModelAdmin of a TenantModel (tests/admin checks that each one is)."""

    form = TenantModelForm

    def get_list_filter(self, request):
        """A filter on a key to a global model (a user) lists only values this tenant uses."""
        filters = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and _points_to_global_model(self.model, item):
                item = (item, RelatedOnlyFieldListFilter)
            filters.append(item)
        return filters


class TenantTabularInline(TenantScopedPermissions, TenantRelatedChoices, admin.TabularInline):
    """An inline of a tenant model inside another tenant model's admin."""

    form = TenantModelForm


class PlatformPermissions:
    """A global model only platform admins see (tenant admins hold no Django permissions)."""

    def _platform(self, request) -> bool:
        return is_platform_admin(request)

    def has_module_permission(self, request) -> bool:
        return self._platform(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._platform(request)

    def has_add_permission(self, request, obj=None) -> bool:  # obj: inlines pass the parent
        return self._platform(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._platform(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._platform(request)


class PlatformModelAdmin(AuditedAdminMixin, PlatformPermissions, admin.ModelAdmin):
    """Admin of a global model for platform admins; every write is audited."""


def _points_to_global_model(model, field_path: str) -> bool:
    try:
        field = get_fields_from_path(model, field_path)[-1]
    except (FieldDoesNotExist, NotRelationField):
        return False
    related = getattr(field, "related_model", None)
    return bool(field.is_relation and related is not None and not is_tenant_model(related))


def _autocomplete_target(request) -> type[Model] | None:
    """The model an autocomplete request lists (None when the request names nothing valid)."""
    try:
        source = apps.get_model(request.GET["app_label"], request.GET["model_name"])
        return source._meta.get_field(request.GET["field_name"]).related_model
    except (KeyError, LookupError, FieldDoesNotExist):
        return None


class TenantAutocompleteJsonView(AutocompleteJsonView):
    """Autocomplete results narrowed by the source admin's rules (TenantRelatedChoices)."""

    def get_queryset(self):
        queryset = super().get_queryset()
        source_admin = self.admin_site._registry.get(self.source_field.model)
        scope = getattr(source_admin, "scope_related_queryset", None)
        if scope is not None:
            queryset = scope(self.request, self.source_field, queryset)
        return queryset


class ActAsForm(forms.Form):
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.exclude(status=Tenant.Status.DELETED).order_by("slug"),
        help_text="Suspended tenants can be entered too (their own users cannot).",
    )
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why you need this tenant's data. Recorded in the audit log.",
    )


class TenantAdminLoginForm(AdminAuthenticationForm):
    """The admin's login form without Django's is_staff gate: a tenant admin is whoever holds
    the admin role in their tenant (has_permission decides, per request), and the same
    password already signs in at /accounts/login/."""

    error_messages = AuthenticationForm.error_messages  # not "... for a staff account"

    def confirm_login_allowed(self, user) -> None:
        AuthenticationForm.confirm_login_allowed(self, user)  # active accounts only


class TenantAdminSite(admin.AdminSite):
    """Django's admin with tenancy: who may enter, what each page shows, acting as a tenant."""

    site_header = "Ameide administration"
    site_title = "Ameide admin"
    index_title = "Administration"
    login_form = TenantAdminLoginForm

    def has_permission(self, request) -> bool:
        # A tenant admin is whoever holds the admin role in the request's tenant (checked on
        # every request); the global is_staff flag is not needed, so that tenant admins
        # provisioned by OIDC sign-in reach the console. Platform admins are superusers.
        user = request.user
        if not user.is_active:
            return False
        return (user.is_superuser and user.is_staff) or is_tenant_admin(request)

    def each_context(self, request):
        context = super().each_context(request)
        context["tenancy"] = self.tenancy_banner(request)
        return context

    def tenancy_banner(self, request) -> dict | None:
        """What the banner on every admin page says: which tenant this page shows, and why."""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        tenant = current_tenant_or_none()
        principal = getattr(request, "principal", None)
        if tenant is not None and getattr(principal, "via", "") == "acting_as":
            return {"mode": "acting", "tenant": tenant, "reason": principal.acting_reason}
        if tenant is not None:
            return {"mode": "tenant", "tenant": tenant}
        if is_platform_admin(request):
            return {"mode": "platform"}
        return None

    # -- every admin view: no TenantNotSet ever reaches the user as a 500 -------------------

    def admin_view(self, view, cacheable=False):
        return super().admin_view(self._tenant_guard(view), cacheable)

    def _tenant_guard(self, view):
        site = self

        def guarded(request, *args, **kwargs):
            owner = getattr(view, "__self__", None)
            model = getattr(owner, "model", None)
            if is_tenant_model(model) and current_tenant_or_none() is None:
                return site.tenant_required_view(request, model=model)
            # Platform pages (global models, acting as a tenant) are global work: a platform
            # admin does it in the global scope even while acting as a tenant, where the
            # database shows that tenant's rows only.
            platform = isinstance(owner, PlatformModelAdmin) or getattr(view, "global_work", False)
            scope = no_tenant() if platform and is_platform_admin(request) else nullcontext()
            try:
                with scope:
                    response = view(request, *args, **kwargs)
                    # Render here: template rendering runs queries too, and must be guarded.
                    if getattr(response, "is_rendered", True) is False:
                        response.render()
            except TenantNotSet:
                return site.tenant_required_view(request, model=model)
            return response

        return update_wrapper(guarded, view)

    def tenant_required_view(self, request, *, model=None) -> HttpResponse:
        """The page a tenant-model URL shows when no tenant is chosen (a platform admin)."""
        context = {
            **self.each_context(request),
            "title": "Choose a tenant first",
            "model_name": model._meta.verbose_name_plural if model is not None else "",
            "may_act_as": is_platform_admin(request),
            "act_as_url": reverse("admin:act_as", current_app=self.name)
            + "?"
            + urlencode({"next": request.get_full_path()}),
        }
        return TemplateResponse(request, "admin/tenant_required.html", context).render()

    # -- acting as a tenant ------------------------------------------------------------

    def get_urls(self):
        return [
            path("act-as/", self.admin_view(self.act_as_view), name="act_as"),
            path(
                "act-as/stop/",
                self.admin_view(require_POST(self.act_as_stop_view)),
                name="act_as_stop",
            ),
            *super().get_urls(),
        ]

    def _next_url(self, request) -> str:
        candidate = request.POST.get("next") or request.GET.get("next") or ""
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return reverse("admin:index", current_app=self.name)

    def act_as_view(self, request):
        if not is_platform_admin(request):
            raise PermissionDenied
        form = ActAsForm(
            request.POST if request.method == "POST" else None,
            initial={"tenant": request.GET.get("tenant")},
        )
        if request.method == "POST" and form.is_valid():
            try:
                acting = act_as_start(
                    request=request,
                    tenant=form.cleaned_data["tenant"],
                    reason=form.cleaned_data["reason"],
                )
            except ActingRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"You are now acting as {acting.tenant.name}.")
                return HttpResponseRedirect(self._next_url(request))
        context = {
            **self.each_context(request),
            "title": "Act as a tenant",
            "form": form,
            "next": request.POST.get("next") or request.GET.get("next", ""),
        }
        return TemplateResponse(request, "admin/act_as.html", context)

    def act_as_stop_view(self, request):
        if not is_platform_admin(request):
            raise PermissionDenied
        ended = act_as_stop(request=request, why="stopped")
        if ended is not None:
            messages.info(request, f"You stopped acting as {ended.tenant.name}.")
        return HttpResponseRedirect(reverse("admin:index", current_app=self.name))

    # Choosing among all tenants is global work, whichever tenant the admin acts as now.
    act_as_view.global_work = True
    act_as_stop_view.global_work = True

    def logout(self, request, extra_context=None):
        if request.method == "POST" and is_platform_admin(request):
            act_as_stop(request=request, why="signed out")
        return super().logout(request, extra_context)

    def autocomplete_view(self, request):
        view = TenantAutocompleteJsonView.as_view(admin_site=self)
        if is_platform_admin(request) and not is_tenant_model(_autocomplete_target(request)):
            with no_tenant():  # a platform admin picks among every global row
                return view(request)
        return view(request)


def model_admins_of_tenant_models(site: admin.AdminSite) -> dict[type[Model], admin.ModelAdmin]:
    """The registered admins of tenant models (tests check each is a TenantModelAdmin)."""
    return {model: ma for model, ma in site._registry.items() if is_tenant_model(model)}
