"""The tour's writes: start, next, real actions, pause, skip and resume, replay, and the S-7 step's setting."""

from __future__ import annotations

import pytest
from django.test import override_settings

from accounts.tests.factories import user_make
from onboarding.models import Award, Event, Journey, StepProgress, TourStep
from onboarding.selectors import tour_state, tour_steps_active
from onboarding.services import (
    badge_award,
    event_record,
    tour_next,
    tour_pause,
    tour_replay,
    tour_resume,
    tour_skip,
    tour_start,
)
from onboarding.tests.factories import journey_of

pytestmark = pytest.mark.django_db

SIX = ["assistants", "chat", "knowledge", "usage", "profile", "invite"]


def test_a_new_user_has_a_journey_from_sign_up_and_a_tour_not_started():
    user = user_make()

    journey = journey_of(user)
    state = tour_state(user=user)

    assert journey.signed_up_at == user.date_joined
    assert journey.verified_at is not None  # the factory verifies the address
    assert state["state"] == "new" and state["percent"] == 0 and state["current"] is None
    assert [step["slug"] for step in state["steps"]] == SIX


def test_the_evaluation_step_joins_the_tour_once_its_page_is_set():
    from config.settings import base

    assert "evaluation" not in [step.slug for step in tour_steps_active()]  # the setting emptied (conftest)

    assert base.PARLEY_TOUR_EVALUATION_URL == "/app/evaluation/"  # the default, since the page exists
    with override_settings(PARLEY_TOUR_EVALUATION_URL=base.PARLEY_TOUR_EVALUATION_URL):
        steps = tour_steps_active()
        user = user_make()
        state = tour_state(user=user)

    assert [step.slug for step in steps] == ["assistants", "chat", "evaluation", "knowledge", "usage", "profile",
                                             "invite"]
    assert state["steps"][2] == {"slug": "evaluation", "title": "Explore the S-7 evaluation", "action": "",
                                 "text": state["steps"][2]["text"], "url": "/app/evaluation/",
                                 "element": "[data-tour='evaluation']", "done": False}
    assert state["total"] == 7


def test_a_disabled_step_is_left_out():
    TourStep.objects.filter(slug="usage").update(enabled=False)

    assert "usage" not in [step.slug for step in tour_steps_active()]


def test_start_makes_step_one_current_and_records_reaching_it():
    user = user_make()

    tour_start(user=user)

    journey = journey_of(user)
    assert journey.tour_state == Journey.State.ACTIVE and journey.run == 1
    assert journey.current_step.slug == "assistants"
    assert journey.tour_started_at is not None and journey.run_started_at is not None
    assert list(StepProgress.objects.filter(user=user).values_list("step__slug", flat=True)) == ["assistants"]
    assert tour_state(user=user)["position"] == 1


def test_next_on_a_step_with_a_real_action_moves_on_without_completing_it():
    user = user_make()
    tour_start(user=user)

    tour_next(user=user, step_slug="assistants")

    journey = journey_of(user)
    assert journey.current_step.slug == "chat"
    assert journey.completed_steps == []
    assert tour_state(user=user)["percent"] == 0


def test_the_real_action_completes_the_current_step_and_moves_on():
    user = user_make()
    tour_start(user=user)

    event_record(user_id=user.pk, name=Event.CONVERSATION_STARTED)

    journey = journey_of(user)
    assert journey.completed_steps == ["assistants"]
    assert journey.current_step.slug == "chat"
    assert StepProgress.objects.get(user=user, step__slug="assistants").completed_at is not None
    assert tour_state(user=user)["percent"] == round(100 / 6)


def test_next_completes_a_step_without_an_action():
    user = user_make()
    tour_start(user=user)
    for event in (Event.CONVERSATION_STARTED, Event.MESSAGE_SENT, Event.DOCUMENT_ADDED):
        event_record(user_id=user.pk, name=event)
    assert journey_of(user).current_step.slug == "usage"

    tour_next(user=user, step_slug="usage")

    journey = journey_of(user)
    assert journey.completed_steps == ["assistants", "chat", "knowledge", "usage"]
    assert journey.current_step.slug == "profile"


def test_a_next_from_a_stale_tab_is_ignored():
    user = user_make()
    tour_start(user=user)
    event_record(user_id=user.pk, name=Event.CONVERSATION_STARTED)

    tour_next(user=user, step_slug="assistants")  # that tab still showed step 1

    assert journey_of(user).current_step.slug == "chat"


def test_an_action_done_before_its_step_counts_and_the_tour_skips_past_it():
    user = user_make()
    tour_start(user=user)
    event_record(user_id=user.pk, name=Event.MESSAGE_SENT)  # step 2's action while on step 1

    assert journey_of(user).current_step.slug == "assistants"
    event_record(user_id=user.pk, name=Event.CONVERSATION_STARTED)

    journey = journey_of(user)
    assert journey.completed_steps == ["chat", "assistants"]
    assert journey.current_step.slug == "knowledge"


def test_passing_the_last_step_finishes_the_run():
    user = user_make()
    tour_start(user=user)
    for event in (Event.CONVERSATION_STARTED, Event.MESSAGE_SENT, Event.DOCUMENT_ADDED):
        event_record(user_id=user.pk, name=event)
    tour_next(user=user, step_slug="usage")
    event_record(user_id=user.pk, name=Event.PROFILE_COMPLETED)

    event_record(user_id=user.pk, name=Event.INVITATION_SENT)

    journey = journey_of(user)
    assert journey.tour_state == Journey.State.FINISHED and journey.current_step is None
    assert journey.tour_finished_at is not None and journey.run_finished_at is not None
    assert tour_state(user=user)["percent"] == 100


def test_pause_then_resume_continues_at_the_same_step():
    user = user_make()
    tour_start(user=user)
    event_record(user_id=user.pk, name=Event.CONVERSATION_STARTED)

    tour_pause(user=user)
    assert journey_of(user).tour_state == Journey.State.PAUSED
    tour_resume(user=user)

    journey = journey_of(user)
    assert journey.tour_state == Journey.State.ACTIVE and journey.current_step.slug == "chat"


def test_skip_then_resume_from_the_profile_starts_at_the_last_step():
    user = user_make()
    tour_start(user=user)
    event_record(user_id=user.pk, name=Event.CONVERSATION_STARTED)

    tour_skip(user=user)
    skipped = journey_of(user)
    tour_resume(user=user)

    assert skipped.tour_state == Journey.State.SKIPPED and skipped.skipped_at is not None
    journey = journey_of(user)
    assert journey.tour_state == Journey.State.ACTIVE and journey.current_step.slug == "chat"
    assert journey.completed_steps == ["assistants"]


def test_skipping_before_starting_and_resuming_starts_the_tour():
    user = user_make()
    tour_skip(user=user)

    tour_resume(user=user)

    assert journey_of(user).current_step.slug == "assistants"


def test_replay_starts_over_and_keeps_badges_and_first_times():
    user = user_make()
    tour_start(user=user)
    for event in (Event.CONVERSATION_STARTED, Event.MESSAGE_SENT, Event.DOCUMENT_ADDED):
        event_record(user_id=user.pk, name=event)
    tour_next(user=user, step_slug="usage")
    for event in (Event.PROFILE_COMPLETED, Event.INVITATION_SENT):
        event_record(user_id=user.pk, name=event)
    badge_award(user_id=user.pk, rule="first_chat", event=Event.REPLY_COMPLETED)
    finished = journey_of(user)

    tour_replay(user=user)

    journey = journey_of(user)
    assert journey.run == 2 and journey.tour_state == Journey.State.ACTIVE
    assert journey.completed_steps == [] and journey.current_step.slug == "assistants"
    assert journey.tour_started_at == finished.tour_started_at
    assert journey.tour_finished_at == finished.tour_finished_at
    assert journey.run_finished_at is None
    assert Award.objects.filter(user=user).count() == 1
    assert tour_state(user=user)["percent"] == 0


def test_start_on_a_finished_tour_replays_and_on_a_paused_one_resumes():
    user = user_make()
    tour_start(user=user)
    tour_pause(user=user)

    tour_start(user=user)
    assert journey_of(user).tour_state == Journey.State.ACTIVE and journey_of(user).run == 1


def test_an_unknown_event_is_logged_not_raised(caplog):
    user = user_make()

    assert event_record(user_id=user.pk, name="no_such_event") == []
    assert "could not record no_such_event" in caplog.text


def test_no_user_no_work():
    assert event_record(user_id=None, name=Event.MESSAGE_SENT) == []
