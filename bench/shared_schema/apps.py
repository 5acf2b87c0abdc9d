"""App config of the shared-schema side of pair 7."""

from django.apps import AppConfig


class SharedSchemaConfig(AppConfig):
    name = "bench.shared_schema"
    label = "bench_shared_schema"
    default_auto_field = "django.db.models.BigAutoField"
