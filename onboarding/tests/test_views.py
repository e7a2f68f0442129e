"""The welcome screen, the badges page and the tour's endpoints, for the user and for outsiders."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from accounts.tests.factories import user_make
from chat.models import Conversation
from onboarding.models import Award, Event, Journey
from onboarding.services import badge_award, event_record
from onboarding.tests.factories import journey_of

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def rosa(client):
    user = user_make(email="rosa.maria+test@example.com")
    client.force_login(user)
    return user


def test_welcome_greets_by_a_friendly_name_asks_for_one_and_offers_the_tour(client, rosa):
    body = client.get("/app/").content.decode()

    assert "Welcome, Rosa Maria" in body
    assert "What should we call you?" in body
    assert "Start the tour" in body and 'data-tour-op="start"' in body
    for label in ("assistants available to you", "documents ready", "models online now", "of your chats this week"):
        assert label in body
    assert body.count('name="prompt"') == 3
    assert 'id="ob-state"' in body and 'id="ob-ring"' in body


def test_no_tour_card_when_staff_disabled_every_step(client, rosa):
    from onboarding.models import TourStep

    TourStep.objects.update(enabled=False)

    body = client.get("/app/").content.decode()
    assert "Take the tour" not in body and "0 short steps" not in body


def test_the_name_given_at_first_visit_is_used(client, rosa):
    client.post("/app/profile/name/", {"name": "  Rosa  "})

    body = client.get("/app/").content.decode()
    assert "Welcome, Rosa<" in body and "What should we call you?" not in body


def test_welcome_counts_this_weeks_chats(client, rosa):
    client.post("/app/welcome/chat/", {})
    client.post("/app/welcome/chat/", {})

    body = client.get("/app/").content.decode()
    assert '<span class="ob-stat__value" data-stat="chats_week">2</span>' in body
    assert '<span class="ob-stat__value" data-stat="assistants">4</span>' in body


def test_a_suggested_prompt_opens_a_chat_with_it_filled_in(client, rosa):
    response = client.post("/app/welcome/chat/", {"prompt": "Explain how a heat pump works."})

    conversation = Conversation.objects.get(user=rosa)
    url = urlparse(response["Location"])
    assert url.path == f"/app/chats/{conversation.pk}/"
    assert parse_qs(url.query) == {"prompt": ["Explain how a heat pump works."]}
    assert conversation.assistant.slug == "general"


def test_try_a_chat_goes_to_the_latest_chat_or_to_the_assistants(client, rosa):
    assert client.get("/app/welcome/last-chat/")["Location"] == "/app/assistants/"
    client.post("/app/welcome/chat/", {})

    conversation = Conversation.objects.get(user=rosa)
    assert client.get("/app/welcome/last-chat/")["Location"] == f"/app/chats/{conversation.pk}/"


def test_tour_operations_answer_json(client, rosa):
    started = client.post("/app/tour/start/", **JSON).json()
    assert started["state"] == "active" and started["current"] == "assistants" and started["position"] == 1

    moved = client.post("/app/tour/next/", {"step": "assistants"}, **JSON).json()
    assert moved["current"] == "chat" and moved["percent"] == 0

    paused = client.post("/app/tour/pause/", **JSON).json()
    assert paused["state"] == "paused"
    assert client.post("/app/tour/resume/", **JSON).json()["state"] == "active"
    assert client.post("/app/tour/skip/", **JSON).json()["state"] == "skipped"
    assert client.get("/app/tour/").json()["state"] == "skipped"
    replayed = client.post("/app/tour/replay/", **JSON).json()
    assert replayed["run"] == 2 and replayed["current"] == "assistants"


def test_tour_forms_without_javascript_redirect_to_the_step(client, rosa):
    response = client.post("/app/tour/start/")

    assert response.status_code == 302 and response["Location"] == "/app/tour/continue/"
    assert client.get("/app/tour/continue/")["Location"] == "/app/assistants/"


def test_next_is_only_same_site(client, rosa):
    response = client.post("/app/tour/pause/", {"next": "https://evil.example/"})

    assert response["Location"] == "/app/tour/continue/"


def test_next_needs_a_step(client, rosa):
    response = client.post("/app/tour/next/", {}, **JSON)

    assert response.status_code == 400 and "step" in response.json()["error"]["message"]


def test_tour_operations_need_post_and_a_session(client):
    assert client.post("/app/tour/start/", **JSON).status_code == 302  # to the log-in page
    client.force_login(user_make())
    assert client.get("/app/tour/start/").status_code == 405


def test_the_header_carries_the_ring_while_the_tour_is_active(client, rosa):
    client.post("/app/tour/start/", **JSON)
    event_record(user_id=rosa.pk, name=Event.CONVERSATION_STARTED)

    body = client.get("/app/usage/").content.decode()
    state = json.loads(body.split('<script id="ob-state" type="application/json">')[1].split("</script>")[0])
    assert state["tour"]["percent"] == 17 and state["tour"]["current"] == "chat"
    assert 'stroke-dashoffset="83.0"' in body and "Tour 17% complete" in body


def test_unseen_awards_ride_along_until_marked_seen(client, rosa):
    award = badge_award(user_id=rosa.pk, rule="first_chat", event=Event.REPLY_COMPLETED)
    other = badge_award(user_id=user_make().pk, rule="first_chat", event=Event.REPLY_COMPLETED)

    body = client.get("/app/badges/").content.decode()
    assert '"slug": "first-chat"' in body and "Earned" in body

    marked = client.post("/app/badges/seen/", json.dumps({"ids": [award.pk, other.pk]}),
                         content_type="application/json").json()
    assert marked == {"marked": 1}  # the other user's award is untouched
    assert Award.objects.get(pk=other.pk).seen_at is None
    assert '"unseen_awards": []' in client.get("/app/badges/").content.decode()


def test_unseen_awards_are_listed_for_a_page_that_just_connected(client, rosa):
    """A page asks on each socket open, so an award pushed before it subscribed is still toasted."""
    award = badge_award(user_id=rosa.pk, rule="first_chat", event=Event.REPLY_COMPLETED)
    badge_award(user_id=user_make().pk, rule="first_chat", event=Event.REPLY_COMPLETED)

    listed = client.get("/app/badges/unseen/").json()["unseen_awards"]
    assert [(a["id"], a["slug"], a["name"]) for a in listed] == [(award.pk, "first-chat", award.badge.name)]

    client.post("/app/badges/seen/", json.dumps({"ids": [award.pk]}), content_type="application/json")
    assert client.get("/app/badges/unseen/").json() == {"unseen_awards": []}
    client.logout()
    assert client.get("/app/badges/unseen/").status_code == 302  # to the login page


def test_awards_seen_refuses_junk(client, rosa):
    response = client.post("/app/badges/seen/", "{not json", content_type="application/json")

    assert response.status_code == 400


def test_a_journey_row_exists_for_users_created_before_onboarding(client):
    user = user_make()
    Journey.objects.filter(pk=user.pk).delete()
    client.force_login(user)

    assert client.post("/app/tour/start/", **JSON).json()["current"] == "assistants"
    assert journey_of(user).signed_up_at == user.date_joined
