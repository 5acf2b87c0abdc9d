"""App config of the deliberately broken app (loaded only by tests/tenancy_broken/settings.py)."""

from django.apps import AppConfig


class TenancyBrokenConfig(AppConfig):
    name = "tests.tenancy_broken"
    label = "tenancy_broken"
