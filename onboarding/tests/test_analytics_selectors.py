"""The dashboard's selectors on a hand-made set of events whose times and counts are known."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.tests.factories import user_make
from onboarding.models import AnalyticsEvent
from onboarding.selectors import (
    PAGEVIEW,
    analytics_active_users,
    analytics_event_names,
    analytics_events_by_name,
    analytics_funnel,
    analytics_retention,
    analytics_timeseries,
    analytics_top,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HOUR, DAY, WEEK = timedelta(hours=1), timedelta(days=1), timedelta(weeks=1)


def events(*rows: dict) -> None:
    AnalyticsEvent.objects.all().delete()  # users' sign-up made none (no consent), but say so
    AnalyticsEvent.objects.bulk_create([
        AnalyticsEvent(source=row.pop("source", "browser"), **row) for row in rows])


def pv(at: datetime, visitor: str, path: str = "/", **extra) -> dict:
    return {"name": PAGEVIEW, "at": at, "visitor": visitor, "path": path, **extra}


def ev(name: str, at: datetime, user, **extra) -> dict:
    return {"name": name, "at": at, "user": user, "source": "server", **extra}


# ----------------------------------------------------------------------------- traffic


@pytest.fixture
def traffic():
    user = user_make()
    events(
        pv(T0, "a", "/", referrer_host="news.example", device="desktop", country="DE"),  # exactly at since: in
        pv(T0 + HOUR, "a", "/", device="desktop", utm_source="news", utm_medium="email", utm_campaign="spring"),
        pv(T0 + 2 * HOUR, "b", "/pricing", referrer_host="news.example", device="mobile", country="FR"),
        ev("signed_up", T0 + 3 * HOUR, user, visitor="b"),
        pv(T0 + DAY + HOUR, "a2", "/", device="mobile", utm_source="news"),  # the next day a's hash is new
        pv(T0 - DAY, "z", "/old"),  # the previous period
        pv(T0 - 8 * DAY, "y", "/older"),  # before the previous period
        pv(T0 + 7 * DAY, "late", "/late"),  # exactly at until: out
    )
    return user


def test_timeseries_counts_visitors_and_page_views_per_day_and_the_previous_period(traffic):
    series = analytics_timeseries(since=T0, until=T0 + 7 * DAY)

    assert [b.start for b in series.buckets] == [T0 + n * DAY for n in range(7)]
    assert [(b.visitors, b.pageviews, b.events) for b in series.buckets[:3]] == [(2, 3, 4), (1, 1, 1), (0, 0, 0)]
    assert (series.visitors, series.pageviews) == (3, 4)  # a, b on day 0 and a2 on day 1: visitor-days
    assert [b.start for b in series.previous] == [T0 - 7 * DAY + n * DAY for n in range(7)]
    assert [b.pageviews for b in series.previous] == [0, 0, 0, 0, 0, 0, 1]
    assert (series.previous_visitors, series.previous_pageviews) == (1, 1)


def test_timeseries_by_hour(traffic):
    series = analytics_timeseries(since=T0, until=T0 + DAY, interval="hour")

    assert len(series.buckets) == 24
    assert [b.pageviews for b in series.buckets[:4]] == [1, 1, 1, 0]
    assert [b.visitors for b in series.buckets[:4]] == [1, 1, 1, 1]
    assert len(series.previous) == 24 and series.previous[0].start == T0 - DAY


def test_top_pages_referrers_utm_devices_and_countries(traffic):
    def top(dimension, **kw):
        return [(r.label, r.count, r.visitors) for r in
                analytics_top(since=T0, until=T0 + 7 * DAY, dimension=dimension, **kw)]

    assert top("pages") == [("/", 3, 2), ("/pricing", 1, 1)]
    assert top("pages", limit=1) == [("/", 3, 2)]
    assert top("referrers") == [("news.example", 2, 2)]
    assert top("utm") == [("news", 1, 1), ("news / email / spring", 1, 1)]
    assert top("devices") == [("desktop", 2, 1), ("mobile", 2, 2)]
    assert top("countries") == [("DE", 1, 1), ("FR", 1, 1)]


def test_events_by_name_and_the_known_names(traffic):
    rows = analytics_events_by_name(since=T0, until=T0 + 7 * DAY)

    assert [(r.name, r.count, r.users, r.visitors) for r in rows] == [(PAGEVIEW, 4, 0, 3), ("signed_up", 1, 1, 1)]
    assert analytics_event_names() == [PAGEVIEW, "signed_up"]


# ----------------------------------------------------------------------------- users


def test_daily_weekly_and_monthly_active_users():
    until = T0 + 7 * DAY
    u1, u2, u3, u4, u5 = (user_make() for _ in range(5))
    events(
        ev("message_sent", until - HOUR, u1), ev("message_sent", until - 2 * DAY, u1),
        ev("message_sent", until - DAY, u2),  # exactly a day before: daily
        ev("message_sent", until - 3 * DAY, u3),
        ev("message_sent", until - 20 * DAY, u4),
        ev("message_sent", until - 31 * DAY, u5), ev("message_sent", until, u5),  # outside both ends
        pv(until - HOUR, "anonymous"),
    )

    active = analytics_active_users(until=until)

    assert (active.daily, active.weekly, active.monthly) == (2, 3, 4)


def test_weekly_retention_by_first_event():
    a, b, c, d = (user_make() for _ in range(4))
    events(
        ev("signed_up", T0 + HOUR, a), ev("message_sent", T0 + WEEK + DAY, a),
        ev("signed_up", T0 + 2 * DAY, b), ev("message_sent", T0 + 2 * WEEK, b),
        ev("signed_up", T0 + WEEK, c), ev("message_sent", T0 + WEEK + HOUR, c), ev("message_sent", T0 + 2 * WEEK, c),
        # d's first event was before the range: not a new cohort member.
        ev("message_sent", T0 - DAY, d), ev("message_sent", T0 + HOUR, d),
    )

    retention = analytics_retention(since=T0, until=T0 + 3 * WEEK, weeks=4)

    assert [(r.week, r.users, r.active) for r in retention.cohorts] == [
        (T0, 2, [100.0, 50.0, 50.0, None]),
        (T0 + WEEK, 1, [100.0, 100.0, None, None]),
    ]


# ----------------------------------------------------------------------------- funnels

STEPS = ["signed_up", "email_verified", "paid"]


@pytest.fixture
def journeys():
    """u1 converts fully; u2 verifies exactly at the window's end, pays a second past it; u3 verifies a second
    past the window; u4 pays before verifying; u5 signed up before the range; u6 never signed up."""
    u1, u2, u3, u4, u5, u6 = (user_make() for _ in range(6))
    events(
        ev("signed_up", T0 + 1 * HOUR, u1, plan="free"), ev("email_verified", T0 + 2 * HOUR, u1),
        ev("paid", T0 + 5 * HOUR, u1), ev("signed_up", T0 + 3 * DAY, u1, plan="pro"),
        ev("signed_up", T0 + 2 * HOUR, u2, plan="pro"), ev("email_verified", T0 + 2 * HOUR + DAY, u2),
        ev("paid", T0 + 2 * HOUR + DAY + timedelta(seconds=1), u2),
        ev("signed_up", T0 + 3 * HOUR, u3, plan="free"),
        ev("email_verified", T0 + 3 * HOUR + DAY + timedelta(seconds=1), u3),
        ev("signed_up", T0 + 4 * HOUR, u4, plan="free"), ev("paid", T0 + 5 * HOUR, u4),
        ev("email_verified", T0 + 6 * HOUR, u4),
        ev("signed_up", T0 - HOUR, u5), ev("email_verified", T0, u5), ev("paid", T0 + HOUR, u5),
        ev("email_verified", T0 + HOUR, u6), ev("paid", T0 + 2 * HOUR, u6),
        ev("signed_up", T0 + 7 * DAY, u6),  # exactly at until: out
    )
    return u1, u2, u3, u4


def _funnel(**kw):
    return analytics_funnel(**{"steps": STEPS, "since": T0, "until": T0 + 7 * DAY, "window": DAY, **kw})


def test_ordered_funnel_counts_conversion_drop_off_and_times(journeys):
    funnel = _funnel()
    first, verified, paid = funnel.total.steps

    assert [s.users for s in funnel.total.steps] == [4, 3, 1]
    assert (first.conversion, first.drop_off, first.of_first) == (None, None, 100.0)
    assert (verified.conversion, verified.drop_off) == (75.0, 1)
    assert (round(paid.conversion, 1), round(paid.of_first, 1), paid.drop_off) == (33.3, 25.0, 2)
    # Verified after 1 h (u1), 24 h (u2, exactly at the bound) and 2 h (u4): median 2 h, p90 19.6 h.
    assert verified.median_s == 2 * 3600
    assert verified.p90_s == pytest.approx(0.8 * 24 * 3600 + 0.2 * 2 * 3600)
    assert (paid.median_s, paid.median_from_previous_s) == (4 * 3600, 3 * 3600)
    assert funnel.groups == []


def test_window_edge_an_event_at_the_bound_counts_and_one_second_past_does_not(journeys):
    assert [s.users for s in _funnel(window=DAY).total.steps][1] == 3  # u2 at exactly the bound, not u3
    assert [s.users for s in _funnel(window=DAY - timedelta(seconds=1)).total.steps][1] == 2
    assert [s.users for s in _funnel(window=DAY + timedelta(seconds=1)).total.steps] == [4, 4, 2]


def test_any_order_funnel_counts_steps_done_out_of_order(journeys):
    funnel = _funnel(ordered=False)
    paid = funnel.total.steps[2]

    assert [s.users for s in funnel.total.steps] == [4, 3, 2]  # u4 paid before verifying
    # u1 finished both after 4 h; u4 after 2 h (verifying, the later of the two).
    assert paid.median_s == 3 * 3600
    assert paid.median_from_previous_s == pytest.approx((3 * 3600 + 0) / 2)


def test_breakdown_by_plan_at_step_one(journeys):
    funnel = _funnel(breakdown="plan")

    assert [(g.key, [s.users for s in g.steps]) for g in funnel.groups] == [("free", [3, 2, 1]), ("pro", [1, 1, 0])]
    assert [s.users for s in funnel.total.steps] == [4, 3, 1]
    assert funnel.groups[1].steps[2].conversion == 0.0


def test_breakdown_by_sign_up_week(journeys):
    u1, u2, u3, u4 = journeys
    type(u1).objects.filter(pk=u1.pk).update(date_joined=T0 - WEEK + HOUR)
    type(u1).objects.filter(pk__in=[u2.pk, u3.pk, u4.pk]).update(date_joined=T0 + HOUR)

    funnel = _funnel(breakdown="cohort")

    assert [(g.key, [s.users for s in g.steps]) for g in funnel.groups] == [
        ("2026-03-02", [3, 2, 0]), ("2026-02-23", [1, 1, 1])]


def test_a_repeated_step_name_needs_a_second_event_when_ordered(journeys):
    funnel = _funnel(steps=["signed_up", "signed_up"], window=7 * DAY)

    assert [s.users for s in funnel.total.steps] == [4, 1]  # only u1 signed up twice
