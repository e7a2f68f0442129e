"""The staff onboarding funnel, computed in SQL from the stored journeys and step progress.

Three statements, each one pass over the sign-ups in the period: the milestones (with counts,
medians and p90s as aggregates), the steps reached (grouped by step) and the weekly cohorts.
Milestones only count when they happened within the conversion window after sign-up.
Nothing loops over users in Python, so the cost grows with the rows Postgres scans, not with
round trips (`manage.py bench_onboarding` times it at 100k users).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from onboarding.selectors.tour import tour_steps_active

# (column in onboarding_journey, label), in funnel order; steps go between "started" and "finished".
MILESTONES_BEFORE = [("verified_at", "Verified their email"), ("tour_started_at", "Started the tour")]
MILESTONES_AFTER = [("tour_finished_at", "Finished the tour"), ("first_chat_at", "First chat (a complete reply)")]


@dataclass
class Stage:
    key: str
    label: str
    users: int
    median_s: float | None = None
    p90_s: float | None = None
    of_signups: float | None = None  # percent
    conversion: float | None = None  # percent of the previous stage
    drop_off: int | None = None  # users of the previous stage who did not get here


@dataclass
class Cohort:
    week: datetime
    signups: int
    verified: int
    started: int
    finished: int
    first_chat: int


@dataclass
class Funnel:
    since: datetime
    until: datetime
    window_days: int
    stages: list[Stage] = field(default_factory=list)
    cohorts: list[Cohort] = field(default_factory=list)


def _milestones_sql() -> str:
    columns = [column for column, _ in MILESTONES_BEFORE + MILESTONES_AFTER]
    parts = ["count(*)"]
    for column in columns:
        # Seconds from sign-up, NULL when it never happened or happened after the window.
        elapsed = (f"CASE WHEN {column} <= signed_up_at + %(window)s "
                   f"THEN extract(epoch FROM {column} - signed_up_at) END")
        # One sort gives both percentiles (an array of fractions), not one sort each.
        parts += [f"count({elapsed})", f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {elapsed})"]
    return (f"SELECT {', '.join(parts)} FROM onboarding_journey "
            "WHERE signed_up_at >= %(since)s AND signed_up_at < %(until)s")


STEPS_SQL = """
SELECT p.step_id, count(*),
       percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM p.reached_at - j.signed_up_at))
FROM onboarding_stepprogress p
JOIN onboarding_journey j ON j.user_id = p.user_id
WHERE j.signed_up_at >= %(since)s AND j.signed_up_at < %(until)s
  AND p.reached_at <= j.signed_up_at + %(window)s
GROUP BY p.step_id
"""

COHORTS_SQL = """
SELECT date_trunc('week', signed_up_at AT TIME ZONE 'UTC') AS week, count(*),
       count(*) FILTER (WHERE verified_at <= signed_up_at + %(window)s),
       count(*) FILTER (WHERE tour_started_at <= signed_up_at + %(window)s),
       count(*) FILTER (WHERE tour_finished_at <= signed_up_at + %(window)s),
       count(*) FILTER (WHERE first_chat_at <= signed_up_at + %(window)s)
FROM onboarding_journey
WHERE signed_up_at >= %(since)s AND signed_up_at < %(until)s
GROUP BY 1 ORDER BY 1
"""


def funnel_compute(*, since: datetime, until: datetime, window_days: int) -> Funnel:
    """Sign-ups in [since, until) and how far they got within `window_days` of signing up."""
    params = {"since": since, "until": until, "window": timedelta(days=window_days)}
    steps = tour_steps_active()
    with transaction.atomic(), connection.cursor() as cursor:
        # Sorts of a few hundred thousand rows (percentiles, cohorts) spill to disk at the default 4 MB;
        # this staff page is rare, so it may use more, for this transaction only.
        cursor.execute("SET LOCAL work_mem = '32MB'")
        cursor.execute(_milestones_sql(), params)
        row = cursor.fetchone()
        cursor.execute(STEPS_SQL, params)
        by_step = {step_id: (count, *(percentiles or (None, None)))
                   for step_id, count, percentiles in cursor.fetchall()}
        cursor.execute(COHORTS_SQL, params)
        cohorts = [Cohort(week.replace(tzinfo=UTC), *counts) for week, *counts in cursor.fetchall()]

    signups = row[0]
    stages = [Stage("signed_up", "Signed up", signups, 0.0, 0.0)]
    figures = iter(row[1:])
    milestones = {}
    for column, label in MILESTONES_BEFORE + MILESTONES_AFTER:
        count, percentiles = next(figures), next(figures)
        p50, p90 = percentiles or (None, None)
        milestones[column] = Stage(column.removesuffix("_at"), label, count, p50, p90)
    stages += [milestones[column] for column, _ in MILESTONES_BEFORE]
    for index, step in enumerate(steps, 1):
        count, p50, p90 = by_step.get(step.pk, (0, None, None))
        stages.append(Stage(f"step:{step.slug}", f"Step {index}: {step.title}", count, p50, p90))
    stages += [milestones[column] for column, _ in MILESTONES_AFTER]

    previous = None
    for stage in stages:
        stage.of_signups = 100 * stage.users / signups if signups else None
        # The first chat is not a step after finishing the tour: it converts from signing up.
        base = stages[0] if stage.key == "first_chat" else previous
        if base is not None:
            stage.conversion = 100 * stage.users / base.users if base.users else None
            stage.drop_off = max(base.users - stage.users, 0)
        previous = stage
    return Funnel(since=since, until=until, window_days=window_days, stages=stages, cohorts=cohorts)
