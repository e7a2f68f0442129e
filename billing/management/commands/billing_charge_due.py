"""Run the charge task's body once in this process (what beat runs every minute), and print what it did."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from billing.services import charge_due_run


class Command(BaseCommand):
    help = "Charge what is due now: reminders, interrupted charges, then due purchases and installments."

    def handle(self, *args, **options) -> None:
        self.stdout.write(json.dumps(charge_due_run(), sort_keys=True))
