"""Django settings, read from the environment with django-environ (see .env.example)."""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts.conf import check_issuer_url, claim_defaults, development_port
from ameide.database import BREAKGLASS_ROLE_DEFAULT, RUNTIME_ROLE_DEFAULT, database_settings

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# No default: a start without a key fails. `make` writes one into the git-ignored .env.
SECRET_KEY = env.str("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

# Behind a TLS-terminating proxy (docs/deployment.md). Each header is trusted only when asked
# for: a client reaching the app directly could send it too.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)

INSTALLED_APPS = [
    # Django's admin with the tenancy-aware default site (docs/admin.md).
    "tenants.admin_apps.TenantAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, no CDN
    "tenants",
    "accounts",
    "workflows",
    "limits",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files under gunicorn, before any session or tenant work (docs/deployment.md).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a body: /api/ takes JSON only, up to DATA_UPLOAD_MAX_MEMORY_SIZE.
    "ameide.api_io.ApiBodyGuardMiddleware",
    "ameide.health.HealthMiddleware",
    # /metrics for the Prometheus scraper (its own token), before sign-in like /healthz.
    "limits.views.MetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantMiddleware",
    # Per-tenant rate, concurrency, statement timeout, usage and the request log line.
    "limits.middleware.LimitsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Sessions keyed by a hash of the cookie, hidden from tenant work (accounts.sessions).
SESSION_ENGINE = "accounts.sessions"

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
# Dedicated schemas take only tenant models' migrations; a tenant's placed rows go to its
# dedicated database (docs/placement.md).
DATABASE_ROUTERS = [
    "tenants.placement.routing.SchemaMigrationRouter",
    "tenants.placement.router.PlacementRouter",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# Tenancy: the runtime role the app logs in as, and the role that break-glass work switches to.
TENANCY_RUNTIME_ROLE = DATABASES["default"]["USER"] or RUNTIME_ROLE_DEFAULT
TENANCY_BREAKGLASS_ROLE = env.str("AMEIDE_BREAKGLASS_ROLE", default=BREAKGLASS_ROLE_DEFAULT)
# Models of other apps that hold no tenant data; `manage.py check` asks every other model to
# be a TenantModel or to declare itself global (tenants.checks).
TENANCY_GLOBAL_APPS = ["admin", "auth", "contenttypes"]
# What the tenancy core knows of the identity app, by name only (no imports of accounts):
# who is calling, the membership model, and the identity app's `manage.py tenants` subcommands.
TENANCY_PRINCIPAL_RESOLVER = "accounts.callers.resolve_principal"
TENANCY_MEMBERSHIP_MODEL = "accounts.Membership"
TENANCY_CLI_EXTENSIONS = ["accounts.cli.AccountSubcommands", "limits.cli.LimitsSubcommands"]
TENANCY_STATEMENT_TIMEOUT_MS = env.int("TENANCY_STATEMENT_TIMEOUT_MS", default=15000)
# The key that signs the scope each transaction carries (tenants.db.signing); default: derived
# from SECRET_KEY. `migrate` and `tenants setup` copy it to where only the owner role reads it.
TENANCY_SCOPE_KEY = env.str("AMEIDE_SCOPE_KEY", default="")
# Encrypts identity providers' client secrets at rest (accounts.secrets); default: from SECRET_KEY.
AMEIDE_SECRETS_KEY = env.str("AMEIDE_SECRETS_KEY", default="")
TENANCY_SCOPE_TTL_SECONDS = env.int("TENANCY_SCOPE_TTL_SECONDS", default=300)
# Bind signed scopes to the PostgreSQL backend's pid. Turn off behind a transaction-mode pooler
# (PgBouncer), where consecutive transactions of one client run on different backends.
TENANCY_SCOPE_BIND_BACKEND = env.bool("TENANCY_SCOPE_BIND_BACKEND", default=True)
# The database is a Citus coordinator (docs/citus.md): the scope also goes out as SET LOCAL,
# which Citus passes on to the workers, and binds to the backend's global pid.
TENANCY_CITUS = env.bool("AMEIDE_CITUS", default=False)
# Server-side prepared statements (the scope's prefix and repeated queries): on by default,
# off with TENANCY_SCOPE_BIND_BACKEND=false (a transaction-mode pooler, docs/rls.md).
TENANCY_PREPARED_STATEMENTS = env.bool(
    "TENANCY_PREPARED_STATEMENTS", default=TENANCY_SCOPE_BIND_BACKEND
)

# Per-tenant limits (docs/limits.md): plans give defaults, a tenant overrides any key
# (`manage.py tenants limits`). Integers; rows_per_model applies to each tenant model.
TENANCY_PLANS = {
    "free": {
        "statement_timeout_ms": 2_000,
        "requests_per_second": 5,
        "burst": 10,
        "concurrent_requests": 2,
        "rows_per_model": 1_000,
        "storage_mb": 50,
    },
    "standard": {
        "statement_timeout_ms": 10_000,
        "requests_per_second": 200,
        "burst": 400,
        "concurrent_requests": 32,
        "rows_per_model": 1_000_000,
        "storage_mb": 10_000,
    },
    "enterprise": {
        "statement_timeout_ms": 30_000,
        "requests_per_second": 2_000,
        "burst": 4_000,
        "concurrent_requests": 256,
        "rows_per_model": 100_000_000,
        "storage_mb": 1_000_000,
    },
}
TENANCY_DEFAULT_PLAN = env.str("TENANCY_DEFAULT_PLAN", default="standard")
# Rate and concurrency state: Redis when set (shared by every process and machine), else
# PostgreSQL. Limits apply to paths under TENANCY_LIMITED_PATH (the API).
REDIS_URL = env.str("REDIS_URL", default="")
TENANCY_REDIS_PREFIX = env.str("TENANCY_REDIS_PREFIX", default="ameide:")
# How long one Redis call may take (connect, then answer; one retry) before the request is
# refused with 503 limits_unavailable: limits fail closed (docs/limits.md).
TENANCY_REDIS_TIMEOUT_SECONDS = env.float("TENANCY_REDIS_TIMEOUT_SECONDS", default=0.5)
TENANCY_LIMITED_PATH = "/api/"
TENANCY_LEASE_SECONDS = env.int("TENANCY_LEASE_SECONDS", default=120)
TENANCY_LIMITS_CACHE_SECONDS = env.float("TENANCY_LIMITS_CACHE_SECONDS", default=5.0)
TENANCY_USAGE_FLUSH_SECONDS = env.float("TENANCY_USAGE_FLUSH_SECONDS", default=10.0)
TENANCY_USAGE_MINUTES_KEPT_HOURS = env.int("TENANCY_USAGE_MINUTES_KEPT_HOURS", default=48)
# The storage quota's figure is at most this old: a write finding an older one measures the
# tenant again (one pass over its rows), at most once per process in this time (docs/limits.md).
TENANCY_STORAGE_MAX_AGE_SECONDS = env.int("TENANCY_STORAGE_MAX_AGE_SECONDS", default=300)
# /metrics names the top N tenants by requests today; the others are "other" (bounded labels).
TENANCY_METRICS_TOP_TENANTS = env.int("TENANCY_METRICS_TOP_TENANTS", default=20)
TENANCY_METRICS_TOP_REFRESH_SECONDS = env.float("TENANCY_METRICS_TOP_REFRESH_SECONDS", default=60)
# /metrics answers only a scraper sending `Authorization: Bearer <METRICS_TOKEN>`; unset: 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

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
# Where `collectstatic` writes (the image sets it). Unset: WhiteNoise serves the apps' own
# static folders, so a checkout under gunicorn has the admin's styling without a build step.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = STATIC_ROOT is None

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
        "ameide.api_io.FilterBackend",
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
    # Swagger UI from drf-spectacular-sidecar's static files: /api/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env.str("LOG_LEVEL", default="WARNING")
# JSON lines (python-json-logger) naming the tenant, user and request id; LOG_FORMAT=plain for
# one readable line each. ACCESS_LOG=false drops the line per request (ameide.request).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "tenant": {"()": "tenants.logging.TenantLogFilter"},
        "client_errors": {"()": "ameide.log_filters.ClientErrorWithoutTraceback"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s tenant=%(tenant)s user=%(user)s "
            "request=%(request_id)s %(message)s"
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(process)d %(tenant)s %(user)s "
            "%(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["tenant", "client_errors"],
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
        }
    },
    "loggers": {
        # Without this, Django's own console handler (DEBUG only) prints each of its lines a
        # second time beside ours: one handler, the root's, with the tenant on every line.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        # runserver's request lines (`make run`), at INFO whatever LOG_LEVEL says, as Django
        # prints them by default (configuring "django" above resets its children).
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "ameide.request": {
            "handlers": ["console"],
            "level": "INFO" if env.bool("ACCESS_LOG", default=True) else "WARNING",
            "propagate": False,
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# --- Sign-in (OIDC): docs/sign-in.md; claim defaults per provider in accounts/conf.py.
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
# Admitted bearer principals per process (accounts.admission_cache): dropped on PostgreSQL's
# signal whenever memberships, users, tenants or providers change; 0 switches it off.
ADMISSION_CACHE_SECONDS = env.float("ADMISSION_CACHE_SECONDS", default=300.0)
ADMISSION_CACHE_ENTRIES = env.int("ADMISSION_CACHE_ENTRIES", default=10_000)
# After a move to or from a dedicated database switches, its source stays frozen this long
# (tenants.placement.moving): a process may still route the tenant by the Tenant row it loaded
# before the switch for as long as a request (GUNICORN_TIMEOUT) or a worker's run lasts.
TENANCY_MOVE_STALE_SECONDS = env.float("TENANCY_MOVE_STALE_SECONDS", default=60.0)
# The listener needs a session of its own: a direct address when DATABASE_URL is a
# transaction-mode pooler (default: the runtime role's DATABASE_URL).
ADMISSION_LISTEN_URL = env.str("ADMISSION_LISTEN_URL", default="")
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
LOGIN_REDIRECT_URL = "home"  # accounts.views.home: works for every signed-in user
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?failed=1"
LOGOUT_REDIRECT_URL = "login"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ISSUER and OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("accounts.oidc.TenantOIDCBackend")
# The development issuer (docs/sign-in.md): never with DEBUG off.
DEV_ISSUER_ENABLED = env.bool("DEV_ISSUER_ENABLED", default=False)
if DEV_ISSUER_ENABLED and not DEBUG:
    raise ImproperlyConfigured("DEV_ISSUER_ENABLED=true is refused with DEBUG off.")
# State of `make run` (its port, see DEV_ISSUER_URL); the directory is git-ignored.
RUN_DIR = env.path("AMEIDE_RUN_DIR", default=BASE_DIR / ".run")
# The port comes from PORT, else from the file `make run` writes: a `tenants token` in another
# shell then names the issuer the running server trusts.
_dev_port = development_port(port=env.int("PORT", default=0), run_dir=Path(RUN_DIR))
DEV_ISSUER_URL = env.str("DEV_ISSUER_URL", default=f"http://127.0.0.1:{_dev_port}/dev-issuer")
DEV_ISSUER_KEY_DIR = BASE_DIR / ".devissuer"
if DEV_ISSUER_ENABLED:
    try:
        check_issuer_url(DEV_ISSUER_URL)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DEV_ISSUER_URL: {exc}") from None

# Background work (docs/background-work.md): the worker's lease on a run (renewed while it works;
# a run whose lease lapses was lost with its worker and is retried), how often a run is tried,
# the default run timeout (a definition may set its own) and the longest `wait` step.
WORKER_LEASE_SECONDS = env.float("WORKER_LEASE_SECONDS", default=30.0)
WORKER_POLL_SECONDS = env.float("WORKER_POLL_SECONDS", default=1.0)
WORKFLOW_RUN_MAX_ATTEMPTS = env.int("WORKFLOW_RUN_MAX_ATTEMPTS", default=3)
WORKFLOW_RUN_TIMEOUT_SECONDS = env.int("WORKFLOW_RUN_TIMEOUT_SECONDS", default=600)
WORKFLOW_MAX_WAIT_SECONDS = env.int("WORKFLOW_MAX_WAIT_SECONDS", default=300)
