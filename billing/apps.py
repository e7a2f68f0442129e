from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import receivers, stripe_api
        from billing.metrics import BillingCollector
        from common.metrics import collector_register

        stripe_api.stripe_configure()
        receivers.connect()
        collector_register(BillingCollector())
