"""Reads for onboarding: the tour and its progress, badges, the welcome figures and the funnel."""

from __future__ import annotations

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
    "SUGGESTED_PROMPTS", "Cohort", "Funnel", "Stage", "award_toast", "awards_of_user", "awards_unseen",
    "badges_with_awards",
    "funnel_compute", "journey_of_user", "tour_percent", "tour_state", "tour_steps_active", "week_start",
    "welcome_stats",
]
