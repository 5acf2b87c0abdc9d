"""Settings of the schema-per-tenant comparison project (django-tenants, bench venv only)."""

import os

SECRET_KEY = "bench-only-not-a-secret"  # noqa: S105 (never served; commands only)
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared apps live in the public schema; tenant apps get one schema per tenant.
SHARED_APPS = ["django_tenants", "customers", "django.contrib.contenttypes"]
TENANT_APPS = ["items"]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "customers.Client"
TENANT_DOMAIN_MODEL = "customers.Domain"

DATABASES = {
    "default": {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": os.environ["BENCH_P7_DB_NAME"],
        "USER": os.environ["BENCH_P7_DB_USER"],
        "PASSWORD": os.environ.get("BENCH_P7_DB_PASSWORD", ""),
        "HOST": os.environ["BENCH_P7_DB_HOST"],
        "PORT": os.environ["BENCH_P7_DB_PORT"],
    }
}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "ERROR"}}
