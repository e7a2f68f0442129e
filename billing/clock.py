"""The one clock for billing time: grace periods, due dates, retries and reminders all read it.

Tests and local demos move it forward with `clock_advance` instead of sleeping. The offset lives
in Redis so a test, its Daphne and its Celery worker all see the same time. Outside local/test
settings (BILLING_CLOCK_ADJUSTABLE false, always so in production) it is plain `timezone.now()`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from common.redis_connection import redis_client

OFFSET_KEY = "parley:billing:clock_offset_seconds"


def clock_offset() -> timedelta:
    if not settings.BILLING_CLOCK_ADJUSTABLE:
        return timedelta(0)
    raw = redis_client().get(OFFSET_KEY)
    return timedelta(seconds=float(raw)) if raw else timedelta(0)


def now() -> datetime:
    return timezone.now() + clock_offset()


def clock_advance(*, seconds: float) -> datetime:
    """Move billing time forward (or back, with a negative value); returns the new now()."""
    if not settings.BILLING_CLOCK_ADJUSTABLE:
        raise RuntimeError("The billing clock can only be moved in local or test settings.")
    redis_client().incrbyfloat(OFFSET_KEY, seconds)
    return now()


def clock_reset() -> None:
    if settings.BILLING_CLOCK_ADJUSTABLE:
        redis_client().delete(OFFSET_KEY)
