"""Benchmark only: the application with tenancy switched off, the baseline of pair 6.

What is off: the tenant and limits middleware (no token, no principal, no context, no usage),
DRF authentication and permissions, the tenancy database backend and RLS (Django's stock
backend as the owner, which bypasses RLS), ATOMIC_REQUESTS and CONN_HEALTH_CHECKS (Django's
defaults: no transaction, no `SELECT 1` before a request). Persistent connections are the
application's default (CONN_MAX_AGE), as on the tenant-aware side. The URLs serve the same
viewset, serializer and pagination over a plain queryset filtered by one fixed tenant id, so
the response is byte-for-byte the one the tenant-aware endpoint returns.

It refuses to load unless the benchmark asked for it, so no deployment can select it by a
stray DJANGO_SETTINGS_MODULE.
"""

import os

from django.core.exceptions import ImproperlyConfigured

if os.environ.get("AMEIDE_BENCH_TENANCY_OFF") != "1":
    raise ImproperlyConfigured("bench.settings_off is for `python -m bench` only.")

from ameide.database import owner_settings  # noqa: E402
from ameide.settings import *  # noqa: E402, F403
from ameide.settings import DATABASES, MIDDLEWARE, REST_FRAMEWORK, env  # noqa: E402

_owner = {
    **owner_settings(env),
    "ENGINE": "django.db.backends.postgresql",
    "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"],
    "CONN_HEALTH_CHECKS": False,
    "ATOMIC_REQUESTS": False,
    "TEST": {},
}
DATABASES = {"default": _owner, "owner": dict(_owner)}
MIDDLEWARE = [
    m
    for m in MIDDLEWARE
    if m not in {"tenants.middleware.TenantMiddleware", "limits.middleware.LimitsMiddleware"}
]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
}
ROOT_URLCONF = "bench.urls_off"
BENCH_TENANT_ID = int(os.environ["AMEIDE_BENCH_TENANT_ID"])
BENCH_STATIC_BODY = os.environ["AMEIDE_BENCH_STATIC_BODY"]
