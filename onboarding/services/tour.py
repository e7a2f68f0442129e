"""Writes for the tour: start, next, pause, resume, skip, replay, and steps completed by events.

Every operation locks the user's journey row (`SELECT … FOR UPDATE`), so two tabs or two
devices pressing buttons, and events arriving from chat or knowledge at the same moment, apply
one after the other instead of overwriting each other's progress.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from common.errors import ApplicationError
from onboarding.models import Journey, StepProgress, TourStep
from onboarding.selectors import tour_steps_active
from onboarding.services.live import tour_state_push

State = Journey.State


def journey_lock(*, user_id: int) -> Journey:
    """The user's journey, created on first use (sign-up time from the user row), locked for update."""
    journey = Journey.objects.select_for_update().filter(pk=user_id).first()
    if journey is not None:
        return journey
    from accounts.selectors import user_get

    user = user_get(user_id=user_id)
    if user is None:
        raise ApplicationError("No such user.", code="not_found", status=404)
    # A concurrent first event may insert it first; either way one row exists afterwards.
    Journey.objects.bulk_create([Journey(user_id=user_id, signed_up_at=user.date_joined)], ignore_conflicts=True)
    return Journey.objects.select_for_update().get(pk=user_id)


def _reach(journey: Journey, step: TourStep, now: datetime) -> None:
    journey.current_step = step
    StepProgress.objects.bulk_create([StepProgress(user_id=journey.user_id, step=step, reached_at=now)],
                                     ignore_conflicts=True)


def _finish(journey: Journey, now: datetime) -> None:
    journey.tour_state = State.FINISHED
    journey.current_step = None
    journey.run_finished_at = now
    journey.tour_finished_at = journey.tour_finished_at or now


def _move_on(journey: Journey, steps: list[TourStep], now: datetime, *, after: TourStep | None) -> None:
    """Make the first unfinished step after `after` current; past the last step, the run is finished."""
    done = set(journey.completed_steps)
    start = next((index + 1 for index, step in enumerate(steps) if after and step.pk == after.pk), 0)
    upcoming = next((step for step in steps[start:] if step.slug not in done), None)
    if upcoming is None:
        _finish(journey, now)
    else:
        _reach(journey, upcoming, now)


def _save_and_push(journey: Journey) -> Journey:
    journey.save()
    tour_state_push(user_id=journey.user_id)
    return journey


def _begin_run(journey: Journey, steps: list[TourStep], now: datetime) -> None:
    journey.tour_state = State.ACTIVE
    journey.tour_started_at = journey.tour_started_at or now
    journey.run_started_at, journey.run_finished_at = now, None
    _move_on(journey, steps, now, after=None)


@transaction.atomic
def tour_start(*, user: User) -> Journey:
    """Start the tour; for a tour under way, paused or skipped this resumes it, for a finished one it replays."""
    journey = journey_lock(user_id=user.pk)
    if journey.tour_state == State.FINISHED:
        return tour_replay(user=user)
    if journey.tour_state in (State.PAUSED, State.SKIPPED):
        return tour_resume(user=user)
    if journey.tour_state == State.ACTIVE:
        return journey
    journey.run = max(journey.run, 1)
    _begin_run(journey, tour_steps_active(), timezone.now())
    return _save_and_push(journey)


@transaction.atomic
def tour_next(*, user: User, step_slug: str) -> Journey:
    """The user pressed Next on `step_slug`: a step without a real action completes, then the tour moves on.

    A step with an action (send a message, upload a document...) is left unfinished: only the
    action completes it. A Next for a step that is no longer current (another tab moved on) is
    ignored, and the caller gets the state as it is.
    """
    journey = journey_lock(user_id=user.pk)
    steps = tour_steps_active()
    step = next((s for s in steps if s.slug == step_slug), None)
    if journey.tour_state != State.ACTIVE or step is None or journey.current_step_id != step.pk:
        return journey
    now = timezone.now()
    if not step.action:
        _complete(journey, step, now)
    _move_on(journey, steps, now, after=step)
    return _save_and_push(journey)


@transaction.atomic
def tour_pause(*, user: User) -> Journey:
    journey = journey_lock(user_id=user.pk)
    if journey.tour_state != State.ACTIVE:
        return journey
    journey.tour_state = State.PAUSED
    return _save_and_push(journey)


@transaction.atomic
def tour_resume(*, user: User) -> Journey:
    """Continue at the step the user left (paused or skipped); a tour never started starts."""
    journey = journey_lock(user_id=user.pk)
    if journey.tour_state == State.NEW:
        return tour_start(user=user)
    if journey.tour_state not in (State.PAUSED, State.SKIPPED):
        return journey
    steps = tour_steps_active()
    journey.tour_state = State.ACTIVE
    if journey.current_step_id not in {step.pk for step in steps}:
        _move_on(journey, steps, timezone.now(), after=None)
    return _save_and_push(journey)


@transaction.atomic
def tour_skip(*, user: User) -> Journey:
    """Skip the tour (the page asked first). The profile page offers to resume it."""
    journey = journey_lock(user_id=user.pk)
    if journey.tour_state == State.FINISHED:
        return journey
    journey.tour_state = State.SKIPPED
    journey.skipped_at = timezone.now()
    return _save_and_push(journey)


@transaction.atomic
def tour_replay(*, user: User) -> Journey:
    """Start over from step 1. Badges and the first-time milestones are kept."""
    journey = journey_lock(user_id=user.pk)
    journey.run += 1
    journey.completed_steps = []
    _begin_run(journey, tour_steps_active(), timezone.now())
    return _save_and_push(journey)


def _complete(journey: Journey, step: TourStep, now: datetime) -> None:
    journey.completed_steps = [*journey.completed_steps, step.slug]
    # Completing a step counts as reaching it, for users who did it before the tour got there.
    StepProgress.objects.bulk_create([StepProgress(user_id=journey.user_id, step=step, reached_at=now)],
                                     ignore_conflicts=True)
    StepProgress.objects.filter(user_id=journey.user_id, step=step, completed_at__isnull=True).update(
        completed_at=now)


def tour_steps_complete_for_event(*, journey: Journey, event: str, now: datetime) -> bool:
    """Complete the steps whose action is `event` (journey locked by the caller); True if any did.

    Counted in any state but finished, so work done before starting the tour (or while it is
    paused) is not asked for again; a replay resets the run and asks for everything once more.
    """
    if journey.tour_state == State.FINISHED:
        return False
    steps = tour_steps_active()
    matched = [step for step in steps if step.action == event and step.slug not in journey.completed_steps]
    for step in matched:
        _complete(journey, step, now)
        if journey.tour_state == State.ACTIVE and journey.current_step_id == step.pk:
            _move_on(journey, steps, now, after=step)
    return bool(matched)
