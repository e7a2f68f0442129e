"""Retention: events past PARLEY_ANALYTICS_RETENTION_DAYS go, in batches; consent records stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import user_make
from onboarding.models import AnalyticsEvent, ConsentRecord
from onboarding.services.retention import analytics_events_prune
from onboarding.tasks import analytics_events_prune as prune_task

pytestmark = pytest.mark.django_db


def events_at(*ages: timedelta, now) -> list[int]:
    rows = AnalyticsEvent.objects.bulk_create([
        AnalyticsEvent(name="pageview", source=AnalyticsEvent.Source.BROWSER, at=now - age, path="/")
        for age in ages
    ])
    return [row.pk for row in rows]


def test_only_events_older_than_the_retention_period_go_in_small_batches(settings):
    settings.PARLEY_ANALYTICS_RETENTION_DAYS = 30
    now = timezone.now()
    old = events_at(*[timedelta(days=31, minutes=minute) for minute in range(7)], timedelta(days=400), now=now)
    kept = events_at(timedelta(days=29, hours=23), timedelta(days=1), timedelta(0), now=now)
    user = user_make()
    record = ConsentRecord.objects.create(subject=f"user:{user.pk}", user=user, choice="analytics",
                                          source=ConsentRecord.Source.BANNER, policy_version="2020-01",
                                          created_at=now - timedelta(days=2000))

    deleted = analytics_events_prune(now=now, batch_size=3)  # 8 old rows: batches of 3, 3 and 2

    assert deleted == len(old) == 8
    assert sorted(AnalyticsEvent.objects.values_list("id", flat=True)) == sorted(kept)
    assert ConsentRecord.objects.filter(pk=record.pk).exists()
    assert analytics_events_prune(now=now, batch_size=3) == 0  # a second run finds nothing


def test_the_beat_task_uses_the_default_of_395_days():
    now = timezone.now()
    events_at(timedelta(days=396), now=now)
    [kept] = events_at(timedelta(days=394), now=now)

    assert prune_task.apply().get() == 1
    assert list(AnalyticsEvent.objects.values_list("id", flat=True)) == [kept]
