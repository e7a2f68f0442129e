"""Text and voice chat in headless Chromium against a live Daphne and a real gpu worker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD, user_make
from chat.models import Message

# Screenshots land here (git-ignored) so a person can look at the pages after a run.
SHOTS = Path(__file__).resolve().parent.parent / "test-results"

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _log_in(page, url: str, email: str) -> None:
    page.goto(url + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/app/$"))


def test_text_chat_streams_stops_and_keeps_the_interrupted_reply(page, live_daphne, celery_worker, bundled_models):
    url = live_daphne["url"]
    user_make(email="chat@example.com")
    _log_in(page, url, "chat@example.com")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Assistants").click()
    page.get_by_role("button", name="Start a conversation with General assistant").click()
    expect(page.locator("#chat-status")).to_have_text("Connected")

    page.get_by_label("Message General assistant").fill("Write a long story about a lighthouse keeper and a storm.")
    page.keyboard.press("Enter")
    reply = page.locator(".msg--assistant").last
    expect(reply.locator(".msg__body")).not_to_be_empty(timeout=60_000)
    streamed = reply.locator(".msg__body").inner_text()
    expect(reply.locator(".msg__body")).not_to_have_text(streamed, timeout=30_000)  # still growing

    page.get_by_role("button", name="Stop").click()
    expect(reply.locator(".msg__state")).to_have_text("Interrupted")

    page.reload()
    reply = page.locator(".msg--assistant").last
    expect(reply.locator(".msg__state")).to_have_text("Interrupted")
    expect(page.locator(".msg--user .msg__body")).to_contain_text("lighthouse keeper")
    message = Message.objects.get(role="assistant")
    assert message.status == "interrupted" and message.text.strip()
    assert reply.locator(".msg__body").inner_text().strip()[:20] == message.text.strip()[:20]


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 850}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_a_fallback_reply_says_on_the_page_which_model_answered_and_why(chromium, live_daphne, celery_worker,
                                                                         bundled_models, viewport):
    """The route's first model cannot load; SmolLM2 answers, and the page says so under the reply,
    live and after a reload."""
    from chat.services import assistant_create, conversation_create
    from common.redis_connection import redis_client
    from inference.tests.factories import broken_chat_route

    broken_chat_route()
    for key in redis_client().scan_iter("parley:breaker:*"):
        redis_client().delete(key)
    url = live_daphne["url"]
    user = user_make(email="fallback@example.com")
    assistant = assistant_create(owner=user, name="Fragile", system_prompt="Be brief.",
                                 route_alias="chat-broken-first", max_tokens=24)
    conversation = conversation_create(user=user, assistant=assistant)
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        _log_in(page, url, "fallback@example.com")
        page.goto(f"{url}/app/chats/{conversation.pk}/")
        expect(page.locator("#chat-status")).to_have_text("Connected")
        page.get_by_label("Message Fragile").fill("Say hello.")
        page.keyboard.press("Enter")
        reply = page.locator(".msg--assistant").last
        note = reply.locator(".msg__model")
        expect(note).to_have_text(re.compile(r"^Answered by SmolLM2 .* because broken-chat failed to load"),
                                  timeout=120_000)
        expect(reply.locator(".msg__timing")).to_contain_text("First token", timeout=120_000)  # the reply is done
        expect(note).to_have_text(re.compile(r"^Answered by SmolLM2 .* because broken-chat failed to load"))
        note.scroll_into_view_if_needed()
        expect(note).to_be_in_viewport()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"chat-fallback-{viewport['width']}.png"))
        page.reload()
        expect(page.locator(".msg--assistant").last.locator(".msg__model")).to_have_text(
            re.compile(r"because broken-chat failed to load"))
    finally:
        context.close()
    stored = Message.objects.get(role="assistant")
    assert stored.model_name == "smollm2-135m" and "broken-chat failed to load" in stored.model_note
