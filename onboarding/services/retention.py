"""Retention: analytics events older than PARLEY_ANALYTICS_RETENTION_DAYS are deleted by beat.

In batches of ids, each DELETE its own short transaction, so a backlog (a first run, a lowered
setting) never holds one long lock or one huge transaction, and a second run at the same time
only finds fewer rows. Consent records are never touched: they are the proof of consent the law
asks for, kept apart from the events (ConsentRecord) and outside this policy.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from onboarding.models import AnalyticsEvent

BATCH_SIZE = 10_000


def retention_cutoff(*, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.PARLEY_ANALYTICS_RETENTION_DAYS)


def analytics_events_prune(*, now: datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Delete every event older than the retention period; returns how many went."""
    cutoff = retention_cutoff(now=now)
    deleted = 0
    while True:
        with transaction.atomic():
            # The BRIN index on `at` finds the old block ranges; the ids bound each DELETE.
            old = AnalyticsEvent.objects.filter(at__lt=cutoff).order_by().values_list("id", flat=True)
            ids = list(old[:batch_size])
            if not ids:
                return deleted
            count, _ = AnalyticsEvent.objects.filter(id__in=ids).delete()
            deleted += count
