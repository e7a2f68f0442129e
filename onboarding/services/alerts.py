"""Hourly alerts: a traffic spike, or an error-rate increase, against the same hour of the last 4 weeks.

Beat runs `alerts_check` shortly after each hour ends; for that finished hour it:
1. sets the hour's `TrafficHour` from the Redis request counters (onboarding/middleware.py) and the
   chat replies that hour (a set, not an add: running it again writes the same figures);
2. compares the hour's analytics events with the mean of the same hour 1-4 weeks earlier (a spike
   trips above PARLEY_ANALYTICS_SPIKE_FACTOR x that mean and at least _SPIKE_MIN_EVENTS events);
3. compares the hour's 5xx share of requests, and failed share of chat replies, with the pooled
   share of those 4 hours (trips above _ERROR_FACTOR x it and at least _ERROR_MIN_RATE, with at
   least _ERROR_MIN_REQUESTS requests, or replies, in the hour);
4. creates an `AnalyticsAlert` per tripped kind; (kind, hour) is unique, so a second run, or two
   beats at once, create nothing new;
5. mails staff once per alert: "a row plus a retried task". The task sends, then marks `mailed_at`
   with a guarded UPDATE; a Redis claim keeps two copies of the task from both sending. A crash
   between the send and the UPDATE can mail twice: staff would rather read an alert twice than
   never.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from common.redis_connection import redis_client
from onboarding.middleware import ERRORS_PREFIX, REQUESTS_PREFIX, hour_key
from onboarding.models import AnalyticsAlert, TrafficHour
from onboarding.selectors.alerts import (
    BASELINE_WEEKS,
    HOUR,
    baseline_hours,
    events_by_hour,
    hour_start,
    last_complete_hour,
)

logger = logging.getLogger(__name__)

# Where the alert mail sends staff (the dashboard shows active alerts).
DASHBOARD_PATH = "/staff/analytics/"
MAIL_CLAIM_SECONDS = 300
# An alert whose mail task was lost (a dead broker, retries used up) is mailed by the next hourly run
# within this window; older ones are history.
REMAIL_WITHIN = timedelta(days=1)


# --------------------------------------------------------------------------- 1. traffic


def traffic_hour_flush(*, hour: datetime) -> TrafficHour:
    """Store the hour's request, 5xx and reply counts (idempotent). Redis figures replace the stored ones
    only when Redis has them: a missing key (expired, Redis restarted or down) keeps what was stored."""
    from chat.selectors import replies_counts_between

    hour = hour_start(hour)
    fields: dict[str, int] = {}
    try:
        requests, errors = redis_client().mget(hour_key(REQUESTS_PREFIX, hour), hour_key(ERRORS_PREFIX, hour))
    except Exception:
        logger.warning("analytics: Redis unreachable; the request counts of %s are not updated", hour,
                       exc_info=True)
    else:
        if requests is not None:
            fields["requests"] = int(requests)
            fields["server_errors"] = int(errors or 0)
    replies = replies_counts_between(start=hour, end=hour + HOUR)
    fields.update(replies=replies["replies"], failed_replies=replies["failed"])
    with transaction.atomic():
        row, _ = TrafficHour.objects.update_or_create(hour=hour, defaults=fields)
    return row


# --------------------------------------------------------------------------- 2-3. comparisons


@dataclass(frozen=True)
class Trip:
    kind: str
    observed: float
    baseline: float
    threshold: float
    detail: str


def traffic_spike_check(*, hour: datetime) -> Trip | None:
    counts = events_by_hour(hours=[hour, *baseline_hours(hour)])
    observed = counts.pop(hour)
    baseline = sum(counts.values()) / BASELINE_WEEKS
    factor, minimum = settings.PARLEY_ANALYTICS_SPIKE_FACTOR, settings.PARLEY_ANALYTICS_SPIKE_MIN_EVENTS
    if observed < minimum or observed <= factor * baseline:
        return None
    return Trip(AnalyticsAlert.Kind.TRAFFIC_SPIKE, observed, baseline, max(factor * baseline, float(minimum)),
                f"{observed} events in the hour against {baseline:.1f} on average at this hour over the last "
                f"{BASELINE_WEEKS} weeks (alert above {factor:g}x and at least {minimum}).")


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def error_rate_check(*, hour: datetime) -> Trip | None:
    """The 5xx share of requests, or the failed share of chat replies, whichever tripped (5xx first)."""
    current = TrafficHour.objects.filter(hour=hour).first()
    if current is None:
        return None
    past = TrafficHour.objects.filter(hour__in=baseline_hours(hour)).aggregate(
        requests=Sum("requests"), errors=Sum("server_errors"), replies=Sum("replies"), failed=Sum("failed_replies"))
    factor, floor = settings.PARLEY_ANALYTICS_ERROR_FACTOR, settings.PARLEY_ANALYTICS_ERROR_MIN_RATE
    minimum = settings.PARLEY_ANALYTICS_ERROR_MIN_REQUESTS
    candidates = [
        ("server errors", current.server_errors, current.requests, _share(past["errors"] or 0, past["requests"] or 0),
         "requests"),
        ("failed chat replies", current.failed_replies, current.replies,
         _share(past["failed"] or 0, past["replies"] or 0), "replies"),
    ]
    for label, part, whole, baseline, unit in candidates:
        rate = _share(part, whole)
        if whole < minimum or rate < floor or rate <= factor * baseline:
            continue
        return Trip(AnalyticsAlert.Kind.ERROR_RATE, rate, baseline, max(factor * baseline, floor),
                    f"{label}: {part} of {whole} {unit} ({rate:.1%}) against {baseline:.1%} at this hour over the "
                    f"last {BASELINE_WEEKS} weeks (alert above {factor:g}x and {floor:.0%}).")
    return None


# --------------------------------------------------------------------------- 4-5. alerts and mail


def alerts_check(*, hour: datetime | None = None) -> list[AnalyticsAlert]:
    """The hourly run for `hour` (default: the last complete hour); returns the alerts it created."""
    hour = hour_start(hour) if hour is not None else last_complete_hour()
    traffic_hour_flush(hour=hour)
    created = []
    for trip in (traffic_spike_check(hour=hour), error_rate_check(hour=hour)):
        if trip is not None and (alert := analytics_alert_create(hour=hour, trip=trip)) is not None:
            created.append(alert)
    alerts_mail_enqueue()
    return created


def analytics_alert_create(*, hour: datetime, trip: Trip) -> AnalyticsAlert | None:
    """The alert row, or None when this kind already tripped for this hour (another run created it)."""
    try:
        with transaction.atomic():
            return AnalyticsAlert.objects.create(kind=trip.kind, hour=hour, observed=trip.observed,
                                                 baseline=trip.baseline, threshold=trip.threshold,
                                                 detail=trip.detail[:300])
    except IntegrityError:
        return None


def alerts_mail_enqueue() -> int:
    """Queue the mail of every recent alert not mailed yet (new ones, and any whose task was lost)."""
    from onboarding.tasks import analytics_alert_mail

    pending = list(AnalyticsAlert.objects.filter(mailed_at__isnull=True, created_at__gte=timezone.now() - REMAIL_WITHIN)
                   .order_by("created_at", "id").values_list("pk", flat=True))
    for alert_id in pending:
        transaction.on_commit(lambda alert_id=alert_id: analytics_alert_mail.delay(alert_id=alert_id))
    return len(pending)


def analytics_alert_mail_send(*, alert_id: int) -> bool:
    """Mail staff about the alert once; True when this call sent it. Raises when the send failed (the task
    retries), leaving `mailed_at` empty."""
    from accounts.selectors import staff_emails

    alert = AnalyticsAlert.objects.filter(pk=alert_id, mailed_at__isnull=True).first()
    if alert is None:
        return False
    client = redis_client()
    claim = f"parley:analytics:alert-mail:{alert_id}"
    if not client.set(claim, "1", nx=True, ex=MAIL_CLAIM_SECONDS):
        return False  # another worker is sending it right now
    try:
        recipients = staff_emails()
        if not recipients:
            logger.warning("analytics alert %s: no active staff member has an email address", alert_id)
            return False
        base = settings.PARLEY_BASE_URL.rstrip("/")
        subject = (f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{alert.get_kind_display()} at "
                   f"{alert.hour:%Y-%m-%d %H:00} UTC")
        body = (f"{alert.get_kind_display()} in the hour from {alert.hour:%Y-%m-%d %H:00} UTC.\n\n{alert.detail}\n\n"
                f"Observed: {alert.observed:g}. Baseline: {alert.baseline:g}. Threshold: {alert.threshold:g}.\n\n"
                f"Dashboard: {base}{DASHBOARD_PATH}\n"
                "The thresholds are the PARLEY_ANALYTICS_SPIKE_* and PARLEY_ANALYTICS_ERROR_* settings.\n")
        send_mail(subject, body, None, recipients)
        marked = AnalyticsAlert.objects.filter(pk=alert_id, mailed_at__isnull=True).update(mailed_at=timezone.now())
        return bool(marked)
    finally:
        client.delete(claim)
