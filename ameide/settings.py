"""Django settings, read from the environment with django-environ (see .env.example)."""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts.conf import check_issuer_url, claim_defaults
from ameide.database import BREAKGLASS_ROLE_DEFAULT, RUNTIME_ROLE_DEFAULT, database_settings

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# No default: a start without a key fails. `make` writes one into the git-ignored .env.
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # Django's admin with the tenancy-aware default site (README "The admin console").
    "tenants.admin_apps.TenantAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "tenants",
    "accounts",
    "workflows",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: /api/ takes JSON only, up to DATA_UPLOAD_MAX_MEMORY_SIZE.
    "ameide.api_io.ApiBodyGuardMiddleware",
    "ameide.health.HealthMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ameide.urls"
WSGI_APPLICATION = "ameide.wsgi.application"
ASGI_APPLICATION = "ameide.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = database_settings(env)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# Tenancy: the runtime role the app logs in as, and the role that break-glass work switches to.
TENANCY_RUNTIME_ROLE = DATABASES["default"]["USER"] or RUNTIME_ROLE_DEFAULT
TENANCY_BREAKGLASS_ROLE = env.str("AMEIDE_BREAKGLASS_ROLE", default=BREAKGLASS_ROLE_DEFAULT)
# Models of other apps that hold no tenant data; `manage.py check` asks every other model to
# be a TenantModel or to declare itself global (tenants.checks).
TENANCY_GLOBAL_APPS = ["admin", "auth", "contenttypes", "sessions"]
TENANCY_STATEMENT_TIMEOUT_MS = env.int("TENANCY_STATEMENT_TIMEOUT_MS", default=15000)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        # Every key carries the current tenant (THREATS 18).
        "KEY_FUNCTION": "tenants.cache.tenant_key",
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".run" / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.TenantPrincipalAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.IsTenantMember"],
    # JSON in and out (ameide/api_io.py); the browsable API only with DEBUG on.
    "DEFAULT_PARSER_CLASSES": ["ameide.api_io.JSONBodyParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "ameide.api_io.DebugOnlyBrowsableNegotiation",
    "DEFAULT_PAGINATION_CLASS": "workflows.pagination.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "workflows.filters.StrictOrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "ameide.api_schema.ApiAutoSchema",
    "EXCEPTION_HANDLER": "ameide.api_errors.json_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Ameide workflows API",
    "DESCRIPTION": "Tenant-scoped workflows. The tenant comes from the caller's token.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant": {"()": "tenants.logging.TenantLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s tenant=%(tenant)s %(message)s"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["tenant"], "formatter": "plain"}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}

# --- Sign-in (OIDC): README "Sign-in (OIDC)"; claim defaults per provider in accounts/conf.py.
# The platform-wide provider; more providers (each bound to its tenants) live in the database.
OIDC_PROVIDER = env.str("OIDC_PROVIDER", default="generic")
OIDC_ISSUER = env.str("OIDC_ISSUER", default="")
OIDC_AUDIENCE = [aud for aud in env.list("OIDC_AUDIENCE", default=[]) if aud]
try:
    _oidc_defaults = claim_defaults(
        provider=OIDC_PROVIDER,
        namespace=env.str("OIDC_CLAIM_NAMESPACE", default=""),
        organizations=env.bool("OIDC_AUTH0_ORGANIZATIONS", default=False),
    )
    if OIDC_ISSUER:
        check_issuer_url(OIDC_ISSUER)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
if OIDC_ISSUER and not OIDC_AUDIENCE:
    raise ImproperlyConfigured("OIDC_ISSUER needs OIDC_AUDIENCE (the API's `aud`).")
OIDC_TENANT_CLAIM = env.str("OIDC_TENANT_CLAIM", default=_oidc_defaults["tenant_claim"])
OIDC_ROLES_CLAIM = env.str("OIDC_ROLES_CLAIM", default=_oidc_defaults["roles_claim"])
OIDC_ADMIN_ROLE = env.str("OIDC_ADMIN_ROLE", default=_oidc_defaults["admin_role"])
OIDC_SIGN_IN_LABEL = env.str("OIDC_SIGN_IN_LABEL", default="")
OIDC_LEEWAY_SECONDS = env.int("OIDC_LEEWAY_SECONDS", default=30)  # clock skew, stated
OIDC_JWKS_TIMEOUT_SECONDS = env.float("OIDC_JWKS_TIMEOUT_SECONDS", default=2.0)
OIDC_JWKS_SOFT_TTL_SECONDS = env.float("OIDC_JWKS_SOFT_TTL_SECONDS", default=3600.0)
OIDC_JWKS_MIN_REFETCH_SECONDS = env.float("OIDC_JWKS_MIN_REFETCH_SECONDS", default=30.0)
OIDC_PROVIDER_CACHE_SECONDS = env.float("OIDC_PROVIDER_CACHE_SECONDS", default=30.0)
# Browser sign-in (mozilla-django-oidc, authorization code + PKCE) against OIDC_ISSUER.
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_USE_PKCE = True
# Client authentication at the token endpoint: form fields by default (Auth0's default);
# true for HTTP Basic (client_secret_basic). Keycloak accepts both.
OIDC_TOKEN_USE_BASIC_AUTH = env.bool("OIDC_TOKEN_USE_BASIC_AUTH", default=False)
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of RP-initiated logout
OIDC_TIMEOUT = 5
OIDC_AUTHENTICATE_CLASS = "accounts.oidc.AuthenticateView"
OIDC_CALLBACK_CLASS = "accounts.oidc.CallbackView"
OIDC_OP_LOGOUT_URL_METHOD = "accounts.oidc.provider_logout_url"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/api/"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?failed=1"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ISSUER and OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("accounts.oidc.TenantOIDCBackend")
# The development issuer (README "Development issuer"): never with DEBUG off.
DEV_ISSUER_ENABLED = env.bool("DEV_ISSUER_ENABLED", default=False)
if DEV_ISSUER_ENABLED and not DEBUG:
    raise ImproperlyConfigured("DEV_ISSUER_ENABLED=true is refused with DEBUG off.")
DEV_ISSUER_URL = env.str(
    "DEV_ISSUER_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}/dev-issuer"
)
DEV_ISSUER_KEY_DIR = BASE_DIR / ".devissuer"
if DEV_ISSUER_ENABLED:
    try:
        check_issuer_url(DEV_ISSUER_URL)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DEV_ISSUER_URL: {exc}") from None
