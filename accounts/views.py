"""The page a browser lands on after sign-in: who is signed in, in which tenant, where to go."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render


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
