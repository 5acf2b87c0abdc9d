"""Browser pages of an account: the landing page after sign-in, and choosing the session's
tenant (a member of several tenants switches between them)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.validators import RegexValidator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from accounts import selectors, services
from accounts.errors import TenantSwitchRefused
from accounts.oidc import BACKEND_PATH as OIDC_BACKEND_PATH
from accounts.principal import SESSION_TENANT_KEY
from tenants.services import SLUG_RE


class TenantSwitchForm(forms.Form):
    tenant = forms.CharField(
        max_length=63,
        label="Tenant",
        help_text="Its slug, e.g. acme.",
        validators=[RegexValidator(SLUG_RE, "Enter a tenant slug (lowercase letters, digits, -).")],
    )
    next = forms.CharField(required=False, max_length=2000, widget=forms.HiddenInput)


class TenantSwitchView(LoginRequiredMixin, View):
    """GET: the session's tenant and a form; POST: make another tenant the session's (audited).

    Lives under /accounts/, which runs without entering a tenant, so a session whose tenant
    refuses it (a removed membership) can still move to one that admits it.
    """

    template_name = "accounts/tenant_switch.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        form = TenantSwitchForm(initial={"next": request.GET.get("next", "")})
        return self._page(request, form)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = TenantSwitchForm(request.POST)
        if not form.is_valid():
            return self._page(request, form, status=400)
        current = selectors.session_tenant(
            user=request.user, session_tenant_id=request.session.get(SESSION_TENANT_KEY)
        )
        try:
            tenant = services.session_tenant_switch(
                user=request.user,
                slug=form.cleaned_data["tenant"],
                current_tenant_id=current.pk if current else None,
                provider_session=request.session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND_PATH,
            )
        except TenantSwitchRefused as exc:
            form.add_error("tenant", str(exc))
            return self._page(request, form, status=403)
        request.session[SESSION_TENANT_KEY] = tenant.pk
        messages.success(request, f"You are now working in {tenant.name} ({tenant.slug}).")
        return HttpResponseRedirect(self._next_url(request, form.cleaned_data["next"]))

    def _page(self, request: HttpRequest, form: TenantSwitchForm, *, status: int = 200):
        current = selectors.session_tenant(
            user=request.user, session_tenant_id=request.session.get(SESSION_TENANT_KEY)
        )
        context = {"form": form, "current": current}
        return render(request, self.template_name, context, status=status)

    def _next_url(self, request: HttpRequest, candidate: str) -> str:
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return resolve_url(settings.LOGIN_REDIRECT_URL)


def home(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    # Set by the tenant middleware: None for a platform admin or an account without a tenant.
    principal = getattr(request, "principal", None)
    context = {
        "principal": principal,
        "enters_admin": request.user.is_staff
        and (request.user.is_superuser or (principal is not None and principal.is_tenant_admin)),
    }
    return render(request, "home.html", context)
