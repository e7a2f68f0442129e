"""Run the charge task's body once in this process (what beat runs every minute), and print what it did."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand

from billing.services import charge_due_run


class Command(BaseCommand):
    help = "Charge what is due now: reminders, interrupted charges, then due purchases and installments."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--not-before", type=float, default=0,
                            help="Wait until this Unix time first (lines up concurrent runs in fault tests).")

    def handle(self, *args, **options) -> None:
        delay = options["not_before"] - time.time()
        if delay > 0:
            time.sleep(delay)
        self.stdout.write(json.dumps(charge_due_run(), sort_keys=True))
