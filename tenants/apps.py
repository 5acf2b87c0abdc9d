"""App config: wires model hooks, system checks, grants, the date-time loader and signals."""

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from tenants import checks  # noqa: F401  (registers the system checks)
        from tenants.context import install_breakglass_gate
        from tenants.db import breakglass, loaders
        from tenants.db.backend import base as backend
        from tenants.db.roles import grant_runtime_privileges
        from tenants.placement import databases

        post_migrate.connect(grant_runtime_privileges, dispatch_uid="tenants.grants")
        connection_created.connect(loaders.register, dispatch_uid="tenants.loaders")
        databases.connect_signals()
        backend.connect_signals()
        install_breakglass_gate(breakglass)
