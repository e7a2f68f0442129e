"""Writes for onboarding. Other apps call `event_record` (and `s7_challenge_finished`) only."""

from __future__ import annotations

from onboarding.models import Event
from onboarding.services.analytics import (
    CONSENT_COOKIE,
    analytics_allowed,
    analytics_event_build,
    analytics_event_record,
    consent_choice,
    consent_cookie_value,
    consent_from_cookie,
    privacy_signal,
)
from onboarding.services.awards import awards_mark_seen
from onboarding.services.badges import badge_award
from onboarding.services.consent import (
    ConsentSaved,
    analytics_events_ingest,
    analytics_ingest_throttle,
    browser_events_parse,
    consent_adopt_on_sign_in,
    consent_set,
)
from onboarding.services.events import event_record, s7_challenge_finished
from onboarding.services.live import models_online_broadcast
from onboarding.services.tour import (
    journey_lock,
    tour_next,
    tour_pause,
    tour_replay,
    tour_resume,
    tour_skip,
    tour_start,
)

__all__ = [
    "CONSENT_COOKIE", "analytics_allowed", "analytics_event_build", "analytics_event_record", "consent_choice",
    "consent_cookie_value", "consent_from_cookie", "privacy_signal",
    "ConsentSaved", "analytics_events_ingest", "analytics_ingest_throttle", "browser_events_parse",
    "consent_adopt_on_sign_in", "consent_set",
    "Event", "awards_mark_seen", "badge_award", "event_record", "journey_lock", "models_online_broadcast",
    "s7_challenge_finished", "tour_next", "tour_pause", "tour_replay", "tour_resume", "tour_skip", "tour_start",
]
