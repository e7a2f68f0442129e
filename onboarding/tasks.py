"""Onboarding's Celery tasks (queue `default`)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from onboarding.services import models_online_broadcast as _broadcast


@shared_task(name="onboarding.tasks.models_online_broadcast", acks_late=False, ignore_result=True)
def models_online_broadcast() -> bool:
    """Beat, every 10 s: tell open welcome screens when the loaded models changed (a cheap Redis read
    otherwise). Running twice at once at worst sends the same figures twice."""
    return _broadcast()


@shared_task(name="onboarding.tasks.analytics_alerts_check", ignore_result=True)
def analytics_alerts_check() -> int:
    """Beat, hourly (a few minutes past): traffic and error-rate alerts for the hour that just ended.
    Safe twice: the hour's figures are set, not added, and an alert is unique per kind and hour."""
    from onboarding.services.alerts import alerts_check

    return len(alerts_check())


@shared_task(bind=True, name="onboarding.tasks.analytics_alert_mail", ignore_result=True,
             autoretry_for=(OSError, OperationalError, InterfaceError), retry_backoff=30, retry_backoff_max=1800,
             max_retries=5)
def analytics_alert_mail(self, *, alert_id: int) -> bool:
    """Mail staff about one alert; a failed send raises and is retried, and `mailed_at` stays empty."""
    from onboarding.services.alerts import analytics_alert_mail_send

    return analytics_alert_mail_send(alert_id=alert_id)


@shared_task(name="onboarding.tasks.analytics_events_prune", ignore_result=True)
def analytics_events_prune() -> int:
    """Beat, daily: delete events past PARLEY_ANALYTICS_RETENTION_DAYS (consent records stay)."""
    from onboarding.services.retention import analytics_events_prune as prune

    return prune()


@shared_task(bind=True, name="onboarding.tasks.umami_forward", ignore_result=True, max_retries=5)
def umami_forward(self, *, event_ids: list[int]) -> int:
    """Send stored events to Umami; on a failure, retry (backoff 30 s, 60 s, ... up to 30 min) with the
    events not sent yet. After 5 retries the rest are dropped for Umami (they stay in Parley)."""
    from onboarding.services.umami import umami_forward as forward

    remaining = forward(event_ids=event_ids)
    if remaining:
        if self.request.retries >= self.max_retries:
            return len(event_ids) - len(remaining)
        raise self.retry(kwargs={"event_ids": remaining}, countdown=min(30 * 2 ** self.request.retries, 1800))
    return len(event_ids)
