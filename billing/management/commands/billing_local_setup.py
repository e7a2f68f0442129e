"""Local mode: create dj-stripe's Account/APIKey/WebhookEndpoint rows and register the webhook with localstripe."""

from __future__ import annotations

import time

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing import stripe_api
from billing.services import stripe_local_setup


class Command(BaseCommand):
    help = "Local mode only: prepare dj-stripe for localstripe and point localstripe's webhooks at this site."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site-url", default=settings.PARLEY_BASE_URL,
                            help="Where localstripe can reach this site (default: PARLEY_BASE_URL).")
        parser.add_argument("--wait", type=float, default=30, help="Seconds to wait for localstripe to answer.")

    def handle(self, *args, **options) -> None:
        if stripe_api.billing_mode() != "local":
            self.stdout.write(f"billing: {stripe_api.billing_mode()} mode; nothing to set up locally.")
            return
        deadline = time.monotonic() + options["wait"]
        while True:
            try:
                requests.get(f"{settings.STRIPE_API_BASE}/v1/customers", timeout=2,
                             headers={"Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}"})
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise CommandError(f"localstripe does not answer at {settings.STRIPE_API_BASE}; "
                                       "is the `stripe` process running?")
                time.sleep(0.3)
        endpoint = stripe_local_setup(site_url=options["site_url"])
        self.stdout.write(f"billing: local Stripe ready at {settings.STRIPE_API_BASE}; webhooks go to {endpoint.url}")
