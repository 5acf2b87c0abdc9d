"""App config of the identity app."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import (
            bearer,
            providers,
            schema,  # noqa: F401  (registers the OpenAPI security extension)
        )

        providers.connect_signals()
        bearer.connect_signals()
