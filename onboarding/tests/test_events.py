"""Awards and milestones come from the domain events other apps' services report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import apikey_create, apikey_touch, user_create
from accounts.tests.factories import user_make
from chat.models import Message
from chat.services import conversation_create, message_assistant_finish, message_assistant_start, message_user_create
from chat.tests.factories import conversation_make
from knowledge.services import citation_open
from knowledge.tests.factories import collection_make, document_ready
from onboarding.models import Award, Badge, Event, Journey
from onboarding.services import event_record, s7_challenge_finished, tour_start
from onboarding.tests.factories import journey_of

pytestmark = pytest.mark.django_db


def badges(user) -> list[str]:
    return sorted(Award.objects.filter(user=user).values_list("badge__slug", flat=True))


def reply(conversation, *, status=Message.Status.DONE, via="text", citations=None):
    message = message_assistant_start(conversation=conversation, request_id=f"r-{timezone.now().timestamp()}",
                                      context={}, via=via, citations=citations)
    message_assistant_finish(message_id=message.pk, text="Hello.", status=status)
    return message


def test_sign_up_and_verification_are_milestones():
    user = user_create(email="new@example.com", password="x" * 12)
    assert journey_of(user).verified_at is None

    from accounts.services import user_email_verify

    user_email_verify(user=user)

    journey = journey_of(user)
    assert journey.signed_up_at == user.date_joined and journey.verified_at is not None


def test_first_complete_reply_awards_first_chat_once_and_is_the_first_chat_milestone():
    user = user_make()
    conversation = conversation_make(user=user)
    reply(conversation, status=Message.Status.FAILED)
    assert badges(user) == [] and journey_of(user).first_chat_at is None

    reply(conversation)
    first = journey_of(user).first_chat_at
    reply(conversation)

    assert badges(user) == ["first-chat"]
    award = Award.objects.get(user=user)
    assert award.event == Event.REPLY_COMPLETED and award.event_data == {"via": "text", "grounded": False}
    assert journey_of(user).first_chat_at == first


def test_staff_raise_a_threshold_and_the_rule_counts_replies():
    Badge.objects.filter(rule="first_chat").update(threshold=2)
    user = user_make()
    conversation = conversation_make(user=user)

    reply(conversation)
    assert badges(user) == []
    reply(conversation)

    assert badges(user) == ["first-chat"]


def test_chat_services_complete_the_first_two_steps():
    user = user_make()
    tour_start(user=user)
    from chat.models import Assistant

    conversation = conversation_create(user=user, assistant=Assistant.objects.get(slug="general"))
    assert journey_of(user).current_step.slug == "chat"
    message_user_create(conversation=conversation, text="Hi")

    journey = journey_of(user)
    assert journey.completed_steps == ["assistants", "chat"] and journey.current_step.slug == "knowledge"


def test_a_cited_passage_opened_earns_knowledge_explorer(bundled_models):
    user = user_make()
    collection = collection_make(user=user)
    document = document_ready(collection=collection, user=user, text="Lighthouses guide ships at night. " * 10)
    chunk = document.chunks.first()

    assert citation_open(user=user, document=document, chunk_id=chunk.pk + 100000) is False
    assert badges(user) == []
    assert citation_open(user=user, document=document, chunk_id=chunk.pk) is True

    assert badges(user) == ["knowledge-explorer"]
    assert Award.objects.get(user=user).event == Event.CITATION_OPENED


def test_five_ready_documents_earn_knowledge_explorer(bundled_models):
    user = user_make()
    collection = collection_make(user=user)
    for index in range(4):
        document_ready(collection=collection, user=user, text=f"Document number {index} is about topic {index}.")
    assert badges(user) == []

    document_ready(collection=collection, user=user, text="The fifth document.")

    assert badges(user) == ["knowledge-explorer"]
    assert Award.objects.get(user=user).event == Event.DOCUMENT_READY


def test_power_user_needs_chat_voice_knowledge_and_an_api_key_within_fourteen_days():
    user = user_make()
    conversation = conversation_make(user=user)
    reply(conversation)  # chat
    reply(conversation, via="voice")  # voice
    event_record(user_id=user.pk, name=Event.DOCUMENT_ADDED)  # knowledge
    assert "power-user" not in badges(user)

    # A key used 15 days ago does not count; a new one does.
    Journey.objects.filter(pk=user.pk).update(last_api_key_at=timezone.now() - timedelta(days=15))
    event_record(user_id=user.pk, name=Event.CITATION_OPENED)
    assert "power-user" not in badges(user)
    api_key, _ = apikey_create(user=user, name="script")

    assert "power-user" in badges(user)
    assert Award.objects.get(user=user, badge__slug="power-user").event == Event.API_KEY_CREATED
    apikey_touch(api_key=api_key)
    assert journey_of(user).last_api_key_at is not None


def test_a_grounded_reply_counts_as_knowledge_use():
    user = user_make()
    reply(conversation_make(user=user), citations=[{"number": 1}])

    journey = journey_of(user)
    assert journey.last_chat_at is not None and journey.last_knowledge_at is not None


def test_the_s7_challenger_service_is_ready_for_the_evaluation_page():
    user = user_make()

    earned = s7_challenge_finished(user_id=user.pk, challenge="s7-basic")
    again = s7_challenge_finished(user_id=user.pk, finished=2)

    assert [award.badge.slug for award in earned] == ["s7-challenger"] and again == []
    assert Award.objects.get(user=user).event_data == {"finished": 1, "challenge": "s7-basic"}


def test_a_failing_onboarding_never_breaks_the_callers_write(monkeypatch):
    """A chat message is stored even if onboarding blows up (logged instead)."""
    from onboarding.services import events

    def boom(**kwargs):
        raise RuntimeError("onboarding is broken")

    monkeypatch.setattr(events, "journey_lock", boom)  # fault injection: the one fake in this module
    conversation = conversation_make()

    message = message_user_create(conversation=conversation, text="Still stored")

    assert Message.objects.filter(pk=message.pk, text="Still stored").exists()
