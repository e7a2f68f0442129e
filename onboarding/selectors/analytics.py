"""Reads for the staff analytics dashboard and its API: aggregates over `onboarding_analyticsevent` in SQL.

Every statement bounds `at` by a range (`at >= since AND at < until`), so the BRIN index on `at` or
the (name, at) index serves it and the cost follows the rows in the range, not the table. Nothing
loops over events in Python. Times are UTC; weeks start on Monday.

Visitors: `visitor` is a hash whose salt rotates daily, so one person is one visitor per day. A
count of distinct hashes over several days is a count of visitor-days (someone who came on three
days counts three times); within one day or one hour it is a count of people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction

# The browser's page view event (helper scripts send it; the server's domain events use onboarding.models.Event).
PAGEVIEW = "pageview"
INTERVALS = ("day", "hour")
DIMENSIONS = ("pages", "referrers", "utm", "devices", "countries")
BREAKDOWNS = ("", "plan", "cohort")
FUNNEL_STEPS_MIN, FUNNEL_STEPS_MAX = 2, 6
# What the edges (the dashboard's forms, the API's serializers) accept: a range of at most 400 days keeps a
# year-on-year view possible and the scans bounded; a funnel window from a minute to 90 days.
RANGE_DAYS_MAX = 400
# Dates outside these are typing mistakes, and near year 1 the previous period would not exist.
DATE_MIN, DATE_MAX = date(2000, 1, 1), date(2999, 12, 31)
WINDOW_MIN, WINDOW_MAX = timedelta(minutes=1), timedelta(days=90)
RETENTION_WEEKS = 8
TABLE = "onboarding_analyticsevent"


def _run(sql: str, params: dict | list, *, work_mem: str = "") -> list[tuple]:
    with transaction.atomic(), connection.cursor() as cursor:
        if work_mem:
            # Distinct counts and percentiles sort; at a million rows the default 4 MB spills to disk.
            # This is a rare staff read, so it may use more, for this transaction only.
            cursor.execute(f"SET LOCAL work_mem = '{work_mem}'")
        cursor.execute(sql, params)
        return cursor.fetchall()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ----------------------------------------------------------------------------- time series


@dataclass
class Bucket:
    start: datetime
    visitors: int
    pageviews: int
    events: int


@dataclass
class Timeseries:
    since: datetime
    until: datetime
    interval: str
    buckets: list[Bucket]
    # The period of equal length just before `since`, bucket for bucket.
    previous: list[Bucket]
    visitors: int  # visitor-days over the whole range (see the module's note)
    pageviews: int
    previous_visitors: int
    previous_pageviews: int


# Buckets come from date_bin on the stored UTC instant, from a Monday: no time zone conversion per row
# (date_trunc(... AT TIME ZONE) cost half as much again at a million rows).
ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"
STEPS = {"day": "24 hours", "hour": "1 hour"}

# One pass over both periods. The inner query groups by (bucket, visitor), which Postgres hashes; the outer
# one counts those pairs per bucket. That is the distinct visitors of the bucket without the sort that
# count(DISTINCT visitor) needs for each bucket.
TIMESERIES_SQL = f"""
WITH per AS (
    SELECT date_bin(CAST(%(step)s AS interval), at, {ORIGIN}) AS start, visitor,
           count(*) FILTER (WHERE name = %(pageview)s) AS pageviews, count(*) AS events
    FROM {TABLE}
    WHERE at >= %(previous)s AND at < %(until)s
    GROUP BY 1, 2
), counts AS (
    SELECT start, count(*) FILTER (WHERE visitor <> '') AS visitors, sum(pageviews) AS pageviews,
           sum(events) AS events
    FROM per GROUP BY start
), buckets AS (
    SELECT generate_series(date_bin(CAST(%(step)s AS interval), %(previous)s, {ORIGIN}),
                           %(until)s - interval '1 microsecond', CAST(%(step)s AS interval)) AS start
)
SELECT b.start, coalesce(c.visitors, 0), coalesce(c.pageviews, 0), coalesce(c.events, 0)
FROM buckets b LEFT JOIN counts c USING (start)
ORDER BY b.start
"""


def analytics_timeseries(*, since: datetime, until: datetime, interval: str = "day") -> Timeseries:
    """Visitors, page views and events per day or hour in [since, until), and the same for the period before.

    Total visitors are visitor-days, the sum over days; by hour, a visitor seen in two hours of a day is
    one visitor of each hour, and the totals still count them once for that day.
    """
    since, until = _utc(since), _utc(until)
    previous_since = since - (until - since)
    params = {"previous": previous_since, "until": until, "step": STEPS[interval], "pageview": PAGEVIEW}
    rows = _run(TIMESERIES_SQL, params, work_mem="64MB")
    buckets = [Bucket(_utc(start), *counts) for start, *counts in rows if start >= since]
    previous = [Bucket(_utc(start), *counts) for start, *counts in rows if start < since]
    if interval == "day":
        visitors, previous_visitors = sum(b.visitors for b in buckets), sum(b.visitors for b in previous)
    else:
        visitors, previous_visitors = _visitor_days(since, until), _visitor_days(previous_since, since)
    return Timeseries(since=since, until=until, interval=interval, buckets=buckets, previous=previous,
                      visitors=visitors, pageviews=sum(b.pageviews for b in buckets),
                      previous_visitors=previous_visitors, previous_pageviews=sum(b.pageviews for b in previous))


VISITOR_DAYS_SQL = f"""
SELECT count(*) FROM (
    SELECT 1 FROM {TABLE} WHERE at >= %(since)s AND at < %(until)s AND visitor <> ''
    GROUP BY date_bin(interval '24 hours', at, {ORIGIN}), visitor
) AS days
"""


def _visitor_days(since: datetime, until: datetime) -> int:
    return _run(VISITOR_DAYS_SQL, {"since": since, "until": until}, work_mem="64MB")[0][0]


# ----------------------------------------------------------------------------- top tables


@dataclass
class TopRow:
    label: str
    count: int  # page views for pages, events otherwise
    visitors: int  # visitor-days


# dimension: (the grouped label, the rows it reads)
_TOP = {
    "pages": ("path", "name = %(pageview)s"),
    "referrers": ("referrer_host", "referrer_host <> ''"),
    "utm": ("concat_ws(' / ', nullif(utm_source, ''), nullif(utm_medium, ''), nullif(utm_campaign, ''))",
            "(utm_source <> '' OR utm_medium <> '' OR utm_campaign <> '')"),
    "devices": ("device", "device <> ''"),
    "countries": ("country", "country <> ''"),
}


def analytics_top(*, since: datetime, until: datetime, dimension: str, limit: int = 20) -> list[TopRow]:
    """The most frequent pages, referrers, UTM source / medium / campaign, devices or countries."""
    label, where = _TOP[dimension]
    # (label, visitor) pairs are hashed, then counted per label: distinct visitors without a sort.
    sql = f"""
        SELECT label, sum(hits) AS total, count(*) FILTER (WHERE visitor <> '')
        FROM (SELECT {label} AS label, visitor, count(*) AS hits
              FROM {TABLE}
              WHERE at >= %(since)s AND at < %(until)s AND {where}
              GROUP BY 1, 2) AS pairs
        GROUP BY label ORDER BY total DESC, label LIMIT %(limit)s
    """
    params = {"since": _utc(since), "until": _utc(until), "pageview": PAGEVIEW, "limit": limit}
    return [TopRow(label, int(hits), visitors) for label, hits, visitors in _run(sql, params, work_mem="64MB")]


# ----------------------------------------------------------------------------- events by name


@dataclass
class EventCount:
    name: str
    count: int
    users: int  # distinct signed-in users
    visitors: int  # visitor-days


# One scan, two hash tables (grouping sets): (name, visitor) pairs and (name, user) pairs, then counted per name.
EVENTS_SQL = f"""
SELECT name, sum(hits) FILTER (WHERE visitor_set = 1) AS total,
       count(*) FILTER (WHERE user_set = 1 AND user_id IS NOT NULL),
       count(*) FILTER (WHERE visitor_set = 1 AND visitor <> '')
FROM (SELECT name, visitor, user_id, count(*) AS hits,
             -- GROUPING(x) is 1 in the set that does not group by x
             GROUPING(user_id) AS visitor_set, GROUPING(visitor) AS user_set
      FROM {TABLE} WHERE at >= %(since)s AND at < %(until)s
      GROUP BY GROUPING SETS ((name, visitor), (name, user_id))) AS pairs
GROUP BY name ORDER BY total DESC, name
"""


def analytics_events_by_name(*, since: datetime, until: datetime) -> list[EventCount]:
    rows = _run(EVENTS_SQL, {"since": _utc(since), "until": _utc(until)}, work_mem="64MB")
    return [EventCount(name, int(total), users, visitors) for name, total, users, visitors in rows]


# A loose index scan over (name, at): each step jumps to the next name, so listing the names costs
# one index probe per name, not a pass over every event.
NAMES_SQL = f"""
WITH RECURSIVE names AS (
    (SELECT name FROM {TABLE} ORDER BY name LIMIT 1)
    UNION ALL
    SELECT (SELECT name FROM {TABLE} WHERE name > names.name ORDER BY name LIMIT 1)
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL
"""


def analytics_event_names() -> list[str]:
    """Every event name stored, sorted: the choices of the funnel builder."""
    return [name for (name,) in _run(NAMES_SQL, [])]


# ----------------------------------------------------------------------------- active users


@dataclass
class ActiveUsers:
    until: datetime
    daily: int  # distinct users with any event in the day before `until`
    weekly: int  # ... in the 7 days before
    monthly: int  # ... in the 30 days before


ACTIVE_SQL = f"""
SELECT count(DISTINCT user_id) FILTER (WHERE at >= %(day)s),
       count(DISTINCT user_id) FILTER (WHERE at >= %(week)s),
       count(DISTINCT user_id)
FROM {TABLE}
WHERE user_id IS NOT NULL AND at >= %(month)s AND at < %(until)s
"""


def analytics_active_users(*, until: datetime) -> ActiveUsers:
    until = _utc(until)
    params = {"until": until, "day": until - timedelta(days=1), "week": until - timedelta(days=7),
              "month": until - timedelta(days=30)}
    daily, weekly, monthly = _run(ACTIVE_SQL, params, work_mem="64MB")[0]
    return ActiveUsers(until=until, daily=daily, weekly=weekly, monthly=monthly)


# ----------------------------------------------------------------------------- retention


@dataclass
class RetentionCohort:
    week: datetime
    users: int
    # Percent of the cohort active in week 0, 1, ...; None for weeks that start at or after `until`.
    active: list[float | None]


@dataclass
class Retention:
    since: datetime
    until: datetime
    weeks: int
    cohorts: list[RetentionCohort]


# A user's cohort is the week of their first event ever: the first in the range, kept only when the user
# has no event before `since` (one probe of the partial (user, at) index per user, not per user-week:
# MATERIALIZED keeps the planner from moving that test after the join). One scan of the range.
RETENTION_SQL = f"""
WITH activity AS MATERIALIZED (
    SELECT user_id, date_bin(interval '7 days', at, {ORIGIN}) AS week
    FROM {TABLE}
    WHERE user_id IS NOT NULL AND at >= %(since)s AND at < %(until)s
    GROUP BY 1, 2
), cohorts AS MATERIALIZED (
    SELECT f.user_id, f.cohort
    FROM (SELECT user_id, min(week) AS cohort FROM activity GROUP BY user_id) AS f
    WHERE NOT EXISTS (SELECT 1 FROM {TABLE} e WHERE e.user_id = f.user_id AND e.at < %(since)s)
)
SELECT c.cohort, CAST(extract(epoch FROM a.week - c.cohort) AS bigint) / 604800 AS offset_weeks, count(*)
FROM cohorts c JOIN activity a ON a.user_id = c.user_id
WHERE a.week < c.cohort + %(weeks)s * interval '1 week'
GROUP BY 1, 2 ORDER BY 1, 2
"""


def analytics_retention(*, since: datetime, until: datetime, weeks: int = 8) -> Retention:
    """Weekly cohorts of users by their first event, and the share of each active in the weeks after."""
    since, until = _utc(since), _utc(until)
    rows = _run(RETENTION_SQL, {"since": since, "until": until, "weeks": weeks}, work_mem="64MB")
    counts: dict[datetime, dict[int, int]] = {}
    for week, offset, users in rows:
        counts.setdefault(_utc(week), {})[offset] = users
    cohorts = []
    for week, by_offset in counts.items():
        size = by_offset.get(0, 0)
        active = [None if week + timedelta(weeks=offset) >= until
                  else (100 * by_offset.get(offset, 0) / size if size else None)
                  for offset in range(weeks)]
        cohorts.append(RetentionCohort(week=week, users=size, active=active))
    return Retention(since=since, until=until, weeks=weeks, cohorts=cohorts)


# ----------------------------------------------------------------------------- funnels


@dataclass
class FunnelStep:
    index: int  # 1-based
    name: str
    users: int
    conversion: float | None = None  # percent of the previous step
    of_first: float | None = None  # percent of step 1
    drop_off: int | None = None  # users of the previous step who did not get here
    median_s: float | None = None  # time from step 1
    p90_s: float | None = None
    median_from_previous_s: float | None = None
    p90_from_previous_s: float | None = None


@dataclass
class FunnelGroup:
    key: str  # "" for everyone, else the plan or the cohort's week (YYYY-MM-DD)
    steps: list[FunnelStep]


@dataclass
class AnalyticsFunnel:
    steps: list[str]
    since: datetime
    until: datetime
    window: timedelta
    ordered: bool
    breakdown: str
    total: FunnelGroup
    groups: list[FunnelGroup] = field(default_factory=list)  # one per breakdown value, by users at step 1


def _funnel_sql(steps: int, *, ordered: bool, breakdown: str) -> str:
    """One statement: a CTE per step keeps each user's earliest qualifying event, then one aggregate per step.

    A step's event must come strictly after the previous step's in (at, id) order when ordered, or
    after step 1's in any order; either way no later than step 1's time + window (inclusive). The
    same name may appear at two steps: the (at, id) order keeps one event from counting twice.
    """
    key = {
        "": "''",
        "plan": "coalesce(nullif(e.plan, ''), '(none)')",
        "cohort": "to_char(date_trunc('week', u.date_joined AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
    }[breakdown]
    join_user = "JOIN accounts_user u ON u.id = e.user_id" if breakdown == "cohort" else ""
    ctes = [f"""s1 AS (
        SELECT DISTINCT ON (e.user_id) e.user_id, {key} AS bkey, e.at AS t1, e.id AS id1,
               e.at AS at, e.id AS eid, e.at AS done, e.at AS done_before
        FROM {TABLE} e {join_user}
        WHERE e.name = %(step1)s AND e.user_id IS NOT NULL AND e.at >= %(since)s AND e.at < %(until)s
        ORDER BY e.user_id, e.at, e.id
    )"""]
    for k in range(2, steps + 1):
        after = "(e.at, e.id) > (p.at, p.eid)" if ordered else "(e.at, e.id) > (p.t1, p.id1)"
        # Any order: the step is "reached" once every step so far is done, at the latest of their times.
        done = "e.at" if ordered else "greatest(p.done, e.at)"
        # (at, eid) is what the next step must come after: this step's event, or step 1's in any order.
        anchor = "e.at AS at, e.id AS eid" if ordered else "p.at, p.eid"
        ctes.append(f"""s{k} AS (
        SELECT DISTINCT ON (p.user_id) p.user_id, p.bkey, p.t1, p.id1, {anchor}, {done} AS done,
               p.done AS done_before
        FROM s{k - 1} p
        JOIN {TABLE} e ON e.user_id = p.user_id AND e.name = %(step{k})s AND {after}
             AND e.at <= p.t1 + %(window)s
        WHERE e.at >= %(since)s AND e.at <= %(until)s + %(window)s
        ORDER BY p.user_id, e.at, e.id
    )""")
    selects = [f"""SELECT {k}, GROUPING(bkey), bkey, count(*),
        percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM done - t1)),
        percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM done - done_before))
        FROM s{k} GROUP BY GROUPING SETS ((), (bkey))""" for k in range(1, steps + 1)]
    return "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(selects)


def _funnel_group(key: str, names: list[str], figures: dict[int, tuple]) -> FunnelGroup:
    steps: list[FunnelStep] = []
    for index, name in enumerate(names, 1):
        users, from_first, from_previous = figures.get(index, (0, None, None))
        p50, p90 = from_first or (None, None)
        q50, q90 = from_previous or (None, None)
        step = FunnelStep(index=index, name=name, users=users)
        if index > 1:
            first, previous = steps[0].users, steps[-1].users
            step.conversion = 100 * users / previous if previous else None
            step.of_first = 100 * users / first if first else None
            step.drop_off = previous - users
            step.median_s, step.p90_s = p50, p90
            step.median_from_previous_s, step.p90_from_previous_s = q50, q90
        else:
            step.of_first = 100.0 if users else None
        steps.append(step)
    return FunnelGroup(key=key, steps=steps)


def analytics_funnel(*, steps: list[str], since: datetime, until: datetime, window: timedelta,
                     ordered: bool = True, breakdown: str = "") -> AnalyticsFunnel:
    """PostHog-style funnel: users who did steps[0] in [since, until), and how many did each next step
    within `window` of it (in order, or in any order), with conversion, drop-off and times to convert."""
    since, until = _utc(since), _utc(until)
    params = {"since": since, "until": until, "window": window}
    params.update({f"step{k}": name for k, name in enumerate(steps, 1)})
    rows = _run(_funnel_sql(len(steps), ordered=ordered, breakdown=breakdown), params, work_mem="64MB")
    total: dict[int, tuple] = {}
    by_key: dict[str, dict[int, tuple]] = {}
    for index, grouping, key, users, from_first, from_previous in rows:
        target = total if grouping else by_key.setdefault(key, {})
        target[index] = (users, from_first, from_previous)
    groups = [_funnel_group(key, steps, figures) for key, figures in by_key.items()] if breakdown else []
    groups.sort(key=lambda group: (-group.steps[0].users, group.key))
    return AnalyticsFunnel(steps=list(steps), since=since, until=until, window=window, ordered=ordered,
                           breakdown=breakdown, total=_funnel_group("", steps, total), groups=groups)
