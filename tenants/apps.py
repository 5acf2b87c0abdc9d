"""App config: wires the model hooks, system checks and post-migrate grants at start-up."""

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenancy"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants import checks  # noqa: F401  (registers the system checks)
        from tenants.context import install_breakglass_gate
        from tenants.db import breakglass
        from tenants.db.roles import grant_runtime_privileges
        from tenants.placement import databases

        post_migrate.connect(grant_runtime_privileges, dispatch_uid="tenants.grants")
        databases.connect_signals()
        install_breakglass_gate(breakglass)
