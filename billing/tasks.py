"""Billing's Celery tasks, on queue `billing` (config.settings CELERY_TASK_ROUTES)."""

from __future__ import annotations

from celery import shared_task

from billing.services import charge_due_run


@shared_task(name="billing.tasks.charge_due")
def charge_due() -> dict[str, int]:
    """Run by beat every minute. Two beats or two workers at once are safe: claims skip locked rows
    and every Stripe call carries a key derived from the ledger row it serves."""
    return charge_due_run()
