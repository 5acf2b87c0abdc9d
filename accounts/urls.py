"""Routes of sign-in: login page, landing page, logout, the session's tenant, the OIDC code
flow and the development issuer."""

from django.contrib.auth.views import LogoutView
from django.urls import include, path

from accounts.dev_issuer import discovery_view, jwks_view
from accounts.oidc import SignInView
from accounts.views import TenantSwitchView, home

urlpatterns = [
    path("", home, name="home"),
    path("accounts/login/", SignInView.as_view(), name="login"),
    path("accounts/logout/", LogoutView.as_view(), name="logout"),
    path("accounts/tenant/", TenantSwitchView.as_view(), name="tenant_switch"),
    # authenticate/, callback/, logout/ (views chosen by OIDC_*_CLASS; 404 unless configured)
    path("oidc/", include("mozilla_django_oidc.urls")),
    path(
        "dev-issuer/.well-known/openid-configuration",
        discovery_view,
        name="dev_issuer_discovery",
    ),
    path("dev-issuer/jwks", jwks_view, name="dev_issuer_jwks"),
]
