"""The one way other apps tell onboarding what happened: `event_record(user_id=..., name=...)`.

Chat, knowledge and accounts call it from their own services at the moment the event happens
(a reply completed, a document became ready, a key was created...). It updates the user's
milestones, completes tour steps whose action is this event, and awards badges; and it is the
server's one door into product analytics (stored only with the user's consent, see
onboarding/services/analytics.py; docs/events.md lists the events).

Onboarding must never break the caller: a chat reply is worth more than a badge. So the work
runs in a savepoint and an error is logged, not raised. Inside the caller's transaction, a
rollback of the caller undoes the onboarding changes too, and nothing is pushed (pushes wait
for the commit).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from onboarding.models import Award, Event, Journey
from onboarding.services.analytics import analytics_event_record
from onboarding.services.badges import badges_for_event
from onboarding.services.live import stats_push, tour_state_push
from onboarding.services.tour import journey_lock, tour_steps_complete_for_event

logger = logging.getLogger(__name__)

# Welcome figures an event changes, pushed to the user's open welcome screen.
STATS_CHANGED = {
    Event.REPLY_COMPLETED: ("chats",),
    Event.CONVERSATION_STARTED: ("chats",),
    Event.DOCUMENT_READY: ("documents",),
}


# Events only product analytics reads: no journey to lock, no tour step or badge to check.
ANALYTICS_ONLY = frozenset({
    Event.VOICE_TURN, Event.ASSISTANT_USED, Event.GROUNDED_ANSWER, Event.S7_RUN, Event.PURCHASE_STARTED,
    Event.PAID, Event.CANCELED, Event.INSTALLMENT_FAILED,
})


def event_record(*, user_id: int | None, name: str, data: dict | None = None, request=None,
                 team_id: int | None = None) -> list[Award]:
    """Record `name` (an `onboarding.models.Event`) for the user; returns the badges it earned.

    `request`, when the action came from one, lets analytics honour its DNT/GPC headers and count
    its visitor; `data` becomes the analytics event's properties (keep it free of personal data).
    """
    if not user_id:
        return []
    try:
        event = Event(name)
    except ValueError:
        logger.exception("onboarding could not record %s for user %s: not an onboarding.models.Event", name, user_id)
        return []
    awards: list[Award] = []
    # Two savepoints: a failure in one (logged) neither undoes the other nor reaches the caller.
    if event not in ANALYTICS_ONLY:
        try:
            with transaction.atomic():
                awards = _apply(user_id=user_id, event=event, data=data or {})
        except Exception:
            logger.exception("onboarding could not record %s for user %s", name, user_id)
    try:
        with transaction.atomic():
            analytics_event_record(name=event.value, user_id=user_id, team_id=team_id, request=request,
                                   props=_analytics_props(data))
    except Exception:
        logger.exception("analytics could not record %s for user %s", name, user_id)
    return awards


# Keys that name another person: onboarding needs them (Community Builder counts invitees), but that
# person never consented to being in the inviter's analytics.
OTHER_PEOPLE = frozenset({"invitee"})


def _analytics_props(data: dict | None) -> dict:
    """Scalars only: the events table is for counting, not for copies of the caller's objects."""
    return {key: value for key, value in (data or {}).items()
            if key not in OTHER_PEOPLE and isinstance(value, (str, int, float, bool))
            and not (isinstance(value, str) and len(value) > 200)}


def _apply(*, user_id: int, event: Event, data: dict) -> list[Award]:
    journey = journey_lock(user_id=user_id)
    now = timezone.now()
    _milestones(journey, event, data, now)
    tour_changed = tour_steps_complete_for_event(journey=journey, event=event, now=now)
    journey.save()
    if tour_changed:
        tour_state_push(user_id=user_id)
    if event in STATS_CHANGED:
        stats_push(user_id=user_id, parts=STATS_CHANGED[event])
    return badges_for_event(journey=journey, event=event, data=data)


def _milestones(journey: Journey, event: Event, data: dict, now) -> None:
    if event == Event.EMAIL_VERIFIED:
        journey.verified_at = journey.verified_at or now
    elif event == Event.REPLY_COMPLETED:
        journey.first_chat_at = journey.first_chat_at or now
        if data.get("via") == "voice":
            journey.last_voice_at = now
        else:
            journey.last_chat_at = now
        if data.get("grounded"):  # an answer from the user's documents uses knowledge too
            journey.last_knowledge_at = now
    elif event in (Event.DOCUMENT_ADDED, Event.CITATION_OPENED):
        journey.last_knowledge_at = now
    elif event in (Event.API_KEY_CREATED, Event.API_KEY_USED):
        journey.last_api_key_at = now


def s7_challenge_finished(*, user_id: int, finished: int = 1, challenge: str = "") -> list[Award]:
    """For the S-7 evaluation: call when the user finishes a challenge (`finished`: how many so far)."""
    return event_record(user_id=user_id, name=Event.S7_CHALLENGE_FINISHED,
                        data={"finished": finished, "challenge": challenge})
