"""Limits and usage in the admin: platform admins see every tenant and edit its plan and
limits (through limits.services, audited); a tenant's own admins see their tenant only.

The tenant admin's pages run in their tenant's scope, where the database shows that tenant's
limits and usage rows and no other's; platform pages run in the global scope.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from limits import selectors, services
from limits.charts import line_chart
from limits.conf import KEYS, plans
from limits.errors import LimitInputError
from limits.models import TenantLimits
from tenants.admin_site import is_platform_admin, is_tenant_admin
from tenants.context import current_tenant_or_none, no_tenant
from tenants.models import Tenant


class LimitsForm(forms.Form):
    plan = forms.ChoiceField(choices=())
    reason = forms.CharField(max_length=500, required=False, help_text="Kept in the audit log.")

    def __init__(self, *args, limits, overrides, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [(name, name) for name in plans()]
        self.fields["plan"].initial = limits.plan
        for key, (low, high, text) in KEYS.items():
            self.fields[key] = forms.IntegerField(
                min_value=low,
                max_value=high,
                required=False,
                initial=overrides.get(key),
                help_text=f"{text}. Empty: the plan's value.",
            )


@admin.register(TenantLimits)
class TenantLimitsAdmin(admin.ModelAdmin):
    """Not a table editor: an overview of tenants' limits and usage, and one page each."""

    def _allowed(self, request) -> bool:
        return is_platform_admin(request) or is_tenant_admin(request)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.overview_view), name="limits_tenantlimits_changelist"),
            path("<int:tenant_id>/", wrap(self.tenant_view), name="limits_tenant"),
            path("<int:tenant_id>/usage/", wrap(self.usage_view), name="limits_usage"),
        ]

    # -- which tenants this admin may see --------------------------------------------------

    def _scope(self, request):
        """Platform admins read in the global scope; tenant admins in their tenant's."""
        if is_platform_admin(request):
            return no_tenant()
        if is_tenant_admin(request):
            return nullcontext()
        raise PermissionDenied

    def _tenant(self, request, tenant_id: int) -> Tenant:
        if not is_platform_admin(request):
            own = current_tenant_or_none()
            if not is_tenant_admin(request) or own is None or own.pk != tenant_id:
                raise Http404  # another tenant's page does not exist for a tenant admin
            return own
        with no_tenant():
            tenant = Tenant.objects.filter(pk=tenant_id).first()
        if tenant is None:
            raise Http404
        return tenant

    def _context(self, request, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "platform": is_platform_admin(request),
            **extra,
        }

    # -- views --------------------------------------------------------------------------------

    def overview_view(self, request):
        with self._scope(request):
            if is_platform_admin(request):
                tenants = list(Tenant.objects.order_by("slug"))
            else:
                tenants = [current_tenant_or_none()]
            since = timezone.now() - timedelta(hours=24)
            totals = selectors.usage_totals(tenant_ids=[t.pk for t in tenants], since=since)
            rows = [
                {
                    "tenant": t,
                    "limits": selectors.limits_of(tenant_id=t.pk),
                    "usage": totals.get(t.pk, {}),
                }
                for t in tenants
            ]
        context = self._context(request, title="Limits and usage", rows=rows, keys=list(KEYS))
        return TemplateResponse(request, "admin/limits/overview.html", context)

    def tenant_view(self, request, tenant_id: int):
        tenant = self._tenant(request, tenant_id)
        with self._scope(request):
            selectors.forget_cached(tenant_id=tenant.pk)
            limits = selectors.limits_of(tenant_id=tenant.pk)
            overrides = selectors.overrides_of(tenant_id=tenant.pk)
        form = None
        if is_platform_admin(request):
            form = LimitsForm(
                request.POST if request.method == "POST" else None,
                limits=limits,
                overrides=overrides,
            )
            if request.method == "POST" and form.is_valid():
                data = form.cleaned_data
                values = {k: data[k] for k in KEYS if data[k] is not None}
                unset = [k for k in KEYS if data[k] is None and k in overrides]
                try:
                    services.limits_change(
                        tenant=tenant,
                        plan=data["plan"],
                        set_values=values,
                        unset=unset,
                        reason=data["reason"],
                    )
                except LimitInputError as exc:
                    form.add_error(None, str(exc))
                else:
                    messages.success(request, f"Limits of {tenant.slug} saved.")
                    return HttpResponseRedirect(reverse("admin:limits_tenant", args=[tenant.pk]))
        elif request.method == "POST":
            raise PermissionDenied
        context = self._context(
            request,
            title=f"Limits of {tenant.slug}",
            tenant=tenant,
            limits=[(key, getattr(limits, key), key in overrides) for key in KEYS],
            plan=limits.plan,
            form=form,
        )
        return TemplateResponse(request, "admin/limits/tenant.html", context)

    def usage_view(self, request, tenant_id: int):
        tenant = self._tenant(request, tenant_id)
        now = timezone.now()
        with self._scope(request):
            series = selectors.usage_series(tenant_id=tenant.pk)
            day_totals = selectors.usage_totals(
                tenant_ids=[tenant.pk], since=now - timedelta(hours=24)
            ).get(tenant.pk, {})
        minutes, days = series["minutes"], series["days"]
        day_start = now - timedelta(hours=24)
        month_start = now - timedelta(days=30)

        def at_day(row) -> datetime:
            return timezone.make_aware(datetime.combine(row["day"], datetime.min.time()))

        charts_24h = [
            line_chart(
                title="Requests per minute, last 24 hours",
                points=[(r["minute"], r["requests"]) for r in minutes],
                start=day_start,
                end=now,
                unit="requests",
            ),
            line_chart(
                title="Errors and refusals per minute, last 24 hours",
                points=[(r["minute"], r["errors"]) for r in minutes],
                start=day_start,
                end=now,
                unit="errors",
            ),
            line_chart(
                title="Database time per minute, last 24 hours",
                points=[(r["minute"], r["db_ms"]) for r in minutes],
                start=day_start,
                end=now,
                unit="ms",
            ),
        ]
        charts_30d = [
            line_chart(
                title="Requests per day, last 30 days",
                points=[(at_day(r), r["requests"]) for r in days],
                start=month_start,
                end=now,
                unit="requests",
            ),
            line_chart(
                title="Average latency per day, last 30 days",
                points=[
                    (at_day(r), r["latency_ms"] / r["requests"] if r["requests"] else 0)
                    for r in days
                ],
                start=month_start,
                end=now,
                unit="ms",
            ),
            line_chart(
                title="Storage per day (when measured), last 30 days",
                points=[(at_day(r), r["storage_bytes"]) for r in days if r["storage_bytes"]],
                start=month_start,
                end=now,
                unit="bytes",
            ),
        ]
        context = self._context(
            request,
            title=f"Usage of {tenant.slug}",
            tenant=tenant,
            totals=day_totals,
            charts_24h=charts_24h,
            charts_30d=charts_30d,
        )
        return TemplateResponse(request, "admin/limits/usage.html", context)
