"""Reads for onboarding: the tour and its progress, badges, the welcome figures, the funnel, and analytics."""

from __future__ import annotations

from onboarding.selectors.alerts import analytics_alerts_recent, analytics_gauges
from onboarding.selectors.analytics import (
    BREAKDOWNS,
    DATE_MAX,
    DATE_MIN,
    DIMENSIONS,
    FUNNEL_STEPS_MAX,
    FUNNEL_STEPS_MIN,
    INTERVALS,
    PAGEVIEW,
    RANGE_DAYS_MAX,
    RETENTION_WEEKS,
    WINDOW_MAX,
    WINDOW_MIN,
    ActiveUsers,
    AnalyticsFunnel,
    Bucket,
    EventCount,
    FunnelGroup,
    FunnelStep,
    Retention,
    RetentionCohort,
    Timeseries,
    TopRow,
    analytics_active_users,
    analytics_event_names,
    analytics_events_by_name,
    analytics_funnel,
    analytics_retention,
    analytics_timeseries,
    analytics_top,
)
from onboarding.selectors.funnel import Cohort, Funnel, Stage, funnel_compute
from onboarding.selectors.tour import (
    award_toast,
    awards_of_user,
    awards_unseen,
    badges_with_awards,
    journey_of_user,
    tour_percent,
    tour_state,
    tour_steps_active,
)
from onboarding.selectors.welcome import SUGGESTED_PROMPTS, week_start, welcome_stats

__all__ = [
    "BREAKDOWNS", "DATE_MAX", "DATE_MIN",
    "DIMENSIONS", "FUNNEL_STEPS_MAX", "FUNNEL_STEPS_MIN", "INTERVALS", "PAGEVIEW", "RANGE_DAYS_MAX",
    "RETENTION_WEEKS", "WINDOW_MAX", "WINDOW_MIN", "ActiveUsers",
    "AnalyticsFunnel", "Bucket", "EventCount", "FunnelGroup", "FunnelStep", "Retention", "RetentionCohort",
    "Timeseries", "TopRow", "analytics_active_users", "analytics_alerts_recent", "analytics_gauges",
    "analytics_event_names", "analytics_events_by_name",
    "analytics_funnel", "analytics_retention", "analytics_timeseries", "analytics_top",
    "SUGGESTED_PROMPTS", "Cohort", "Funnel", "Stage", "award_toast", "awards_of_user", "awards_unseen",
    "badges_with_awards",
    "funnel_compute", "journey_of_user", "tour_percent", "tour_state", "tour_steps_active", "week_start",
    "welcome_stats",
]
