"""Benchmark only: the application as deployed minus what limits add to each request, the
baseline of pair 10.

What is off: the limits middleware (rate and concurrency checks in the store, the tenant's
statement timeout, usage recording, Prometheus figures and the JSON line per request), the
timing of every statement (usage's database time), and /metrics. Everything else (token,
tenant context, RLS backend and the statement label it sends, runtime role) is as in
ameide.settings.

It refuses to load unless the benchmark asked for it, so no deployment can select it by a
stray DJANGO_SETTINGS_MODULE.
"""

import os

from django.core.exceptions import ImproperlyConfigured

if os.environ.get("AMEIDE_BENCH_LIMITS_OFF") != "1":
    raise ImproperlyConfigured("bench.settings_limits_off is for `python -m bench` only.")

from ameide.settings import *  # noqa: E402, F403
from ameide.settings import INSTALLED_APPS, LOGGING, MIDDLEWARE  # noqa: E402

_OFF = ("limits.middleware.LimitsMiddleware", "limits.views.MetricsMiddleware")
MIDDLEWARE = [m for m in MIDDLEWARE if m not in _OFF]
INSTALLED_APPS = [
    "bench.apps.LimitsWithoutStatementTiming" if app == "limits" else app for app in INSTALLED_APPS
]
LOGGING = {
    **LOGGING,
    "loggers": {
        **LOGGING["loggers"],
        "ameide.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
