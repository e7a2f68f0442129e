"""The Procfile's `stripe` process: in local mode, run localstripe and register this site's webhook with it.

In live or test mode there is nothing to run locally; the process idles so honcho keeps the others up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from billing import stripe_api
from config import services


class Command(BaseCommand):
    help = "Run the local Stripe stand-in (localstripe) and point its webhooks at this site."

    def add_arguments(self, parser) -> None:
        port = os.environ.get("PARLEY_PORT", "8000")
        parser.add_argument("--site-url", default=f"http://127.0.0.1:{port}",
                            help="Where localstripe delivers webhooks (default: this machine's PARLEY_PORT).")

    def handle(self, *args, **options) -> None:
        if stripe_api.billing_mode() != "local":
            self.stdout.write(f"billing: {stripe_api.billing_mode()} mode, talking to Stripe itself; "
                              "no local stand-in needed.")
            signal.pause()
            return
        port = urlsplit(settings.STRIPE_API_BASE).port or 8420
        data_dir = services.VAR_DIR / "stripe"
        child = subprocess.Popen([sys.executable, "-m", "billing.localstripe_server", "--port", str(port),
                                  "--data-dir", str(data_dir), "--quiet"])

        def stop(signum, frame) -> None:
            child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            call_command("billing_local_setup", site_url=options["site_url"], wait=30)
        except Exception:
            child.terminate()
            raise
        sys.exit(child.wait())
