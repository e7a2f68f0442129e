from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and teams"

    def ready(self) -> None:
        from accounts import receivers, schema  # noqa: F401 - schema registers the OpenAPI auth extension

        receivers.connect()
