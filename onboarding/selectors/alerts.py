"""Reads for the analytics alerts: events per hour, the same hour over the last 4 weeks, the alert rows,
and the figures /metrics exports (common/metrics.py reads `analytics_gauges` at scrape time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from onboarding.models import AnalyticsAlert, AnalyticsEvent, TrafficHour

HOUR = timedelta(hours=1)
BASELINE_WEEKS = 4
# /metrics calls an alert active while its hour is one of the last two complete hours, so the gauge
# doesn't drop to 0 in the minutes between an hour's end and the check that looks at it.
ACTIVE_HOURS = 2


def hour_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def last_complete_hour(now: datetime | None = None) -> datetime:
    return hour_start(now or timezone.now()) - HOUR


def baseline_hours(hour: datetime) -> list[datetime]:
    """The same hour 1, 2, 3 and 4 weeks earlier."""
    return [hour - timedelta(weeks=week) for week in range(1, BASELINE_WEEKS + 1)]


def events_by_hour(*, hours: list[datetime]) -> dict[datetime, int]:
    """Analytics events in each of these hours, in one query (the BRIN index on `at` serves each range)."""
    ranges = Q()
    for hour in hours:
        ranges |= Q(at__gte=hour, at__lt=hour + HOUR)
    counts = AnalyticsEvent.objects.filter(ranges).aggregate(
        **{f"h{index}": Count("id", filter=Q(at__gte=hour, at__lt=hour + HOUR)) for index, hour in enumerate(hours)})
    return {hour: counts[f"h{index}"] or 0 for index, hour in enumerate(hours)}


def analytics_alerts_recent(*, since: datetime) -> QuerySet[AnalyticsAlert]:
    """Alerts for hours from `since` on, newest first (the dashboard lists them)."""
    return AnalyticsAlert.objects.filter(hour__gte=since).order_by("-hour", "kind")


def analytics_gauges(*, now: datetime | None = None) -> dict[str, object]:
    """The last complete hour's events, their 4-week baseline, its 5xx share, and active alerts per kind."""
    hour = last_complete_hour(now)
    counts = events_by_hour(hours=[hour, *baseline_hours(hour)])
    observed = counts.pop(hour)
    traffic = TrafficHour.objects.filter(hour=hour).values_list("requests", "server_errors").first()
    active = dict(analytics_alerts_recent(since=hour - (ACTIVE_HOURS - 1) * HOUR).order_by()
                  .values_list("kind").annotate(count=Count("id")).values_list("kind", "count"))
    return {
        "events": observed,
        "baseline": sum(counts.values()) / BASELINE_WEEKS,
        "error_rate": traffic[1] / traffic[0] if traffic and traffic[0] else 0.0,
        "alerts": {kind: active.get(kind, 0) for kind in AnalyticsAlert.Kind.values},
    }
