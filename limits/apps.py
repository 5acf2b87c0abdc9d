"""App config: installs the SQL comment and database-time wrapper on every connection."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class LimitsConfig(AppConfig):
    name = "limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from limits.sql import install_wrapper

        connection_created.connect(install_wrapper, dispatch_uid="limits.sql")
