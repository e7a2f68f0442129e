"""Text and voice chat in headless Chromium against a live Daphne and a real gpu worker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from chat.models import Message
from tests.browser import sign_in

# Screenshots land here (git-ignored) so a person can look at the pages after a run.
SHOTS = Path(__file__).resolve().parent.parent / "test-results"

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_text_chat_streams_stops_and_keeps_the_interrupted_reply(page, live_daphne, celery_worker, bundled_models):
    url = live_daphne["url"]
    user_make(email="chat@example.com")
    sign_in(page, url, "chat@example.com")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Assistants").click()
    page.get_by_role("button", name="Start chatting with General assistant").click()
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
        sign_in(page, url, "fallback@example.com")
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


VIEWPORTS = [{"width": 1366, "height": 850}, {"width": 390, "height": 844}]


def _in_viewport(locator, viewport: dict) -> None:
    box = locator.bounding_box()
    assert box is not None, "not rendered"
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box


def _brief_chat(user, name: str = "Brief"):
    """A conversation on the tiny model with short replies, so the flows, not the answers, take the time."""
    from chat.services import assistant_create, conversation_create

    assistant = assistant_create(owner=user, name=name, system_prompt="Answer in one short sentence.",
                                 route_alias="smollm2-135m", max_tokens=32)
    return conversation_create(user=user, assistant=assistant)


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_regenerate_edit_and_the_title_without_reload(chromium, live_daphne, celery_worker, bundled_models, viewport):
    from chat.models import Conversation

    url = live_daphne["url"]
    user = user_make()
    conversation = _brief_chat(user)
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    SHOTS.mkdir(exist_ok=True)
    try:
        sign_in(page, url, user.email)
        page.goto(f"{url}/app/chats/{conversation.pk}/")
        expect(page.locator("#chat-status")).to_have_text("Connected")
        box = page.get_by_label("Message Brief")
        expect(box).to_be_focused()  # a new chat: the message box, not nineteen Tabs away
        expect(page.locator("#stop")).to_be_hidden()
        expect(page.locator("#chat-title")).to_have_text("New chat")

        box.fill("Name one colour of the rainbow.")
        page.keyboard.press("Enter")
        reply = page.locator(".msg--assistant").last
        expect(reply.locator(".msg__timing")).to_contain_text("First token", timeout=120_000)
        expect(page.locator("#stop")).to_be_hidden()
        # The title: the first words at once, then the model's (or its fallback), all without a reload.
        title = page.locator("#chat-title")
        expect(title).not_to_have_text("New chat")
        expect(page.locator('#chat-title[data-title-source="model"], #chat-title[data-title-source="fallback"]')
               ).to_have_count(1, timeout=120_000)
        stored = Conversation.objects.get(pk=conversation.pk)
        expect(title).to_have_text(stored.title)
        assert len(stored.title.split()) <= 6

        # Retry sits on the last reply only, and regenerates it in place: ‹ 2/2 ›.
        expect(page.locator(".msg__retry")).to_have_count(1)
        reply.get_by_role("button", name="Retry: write this reply again").click()
        reply = page.locator(".msg--assistant").last
        expect(reply.locator(".msg__timing")).to_contain_text("First token", timeout=120_000)
        expect(reply.locator(".msg__alt-count")).to_have_text("2/2")
        expect(page.locator(".msg--assistant")).to_have_count(1)
        page.screenshot(path=str(SHOTS / f"chat-regenerated-{viewport['width']}.png"))
        reply.get_by_role("button", name="Previous version").click()
        expect(page.locator(".msg--assistant .msg__alt-count")).to_have_text("1/2")

        # Editing the question branches: the new version is 2/2, its reply follows it.
        page.locator(".msg--user").last.get_by_role("button", name="Edit this message").click()
        editor = page.get_by_label("Edit your message")
        editor.fill("Name one colour of the sea.")
        editor.press("Enter")
        reply = page.locator(".msg--assistant").last
        expect(reply.locator(".msg__timing")).to_contain_text("First token", timeout=120_000)
        user_message = page.locator(".msg--user").last
        expect(user_message.locator(".msg__body")).to_have_text("Name one colour of the sea.")
        expect(user_message.locator(".msg__alt-count")).to_have_text("2/2")
        page.screenshot(path=str(SHOTS / f"chat-edited-{viewport['width']}.png"))

        page.reload()  # the branch the user is on is the one that comes back
        expect(page.locator("#chat-status")).to_have_text("Connected")
        expect(page.locator(".msg--user").last.locator(".msg__body")).to_have_text("Name one colour of the sea.")
        page.locator(".msg--user").last.get_by_role("button", name="Previous version").click()
        expect(page.locator(".msg--user").last.locator(".msg__body")).to_have_text("Name one colour of the rainbow.")
        expect(page.locator(".msg--assistant .msg__alt-count")).to_have_text("1/2")
    finally:
        context.close()


def _long_conversation(user, title: str):
    from chat.services import (
        assistant_create,
        conversation_create,
        conversation_rename,
        message_assistant_finish,
        message_assistant_start,
        message_user_create,
    )

    assistant = assistant_create(owner=user, name="Archivist", system_prompt="Be brief.")
    conversation = conversation_create(user=user, assistant=assistant)
    for i in range(12):
        question = message_user_create(conversation=conversation, text=f"Question {i}: tell me about the harbour.")
        reply = message_assistant_start(conversation=conversation, request_id=f"long-{conversation.pk}-{i}",
                                        context={}, parent=question)
        message_assistant_finish(message_id=reply.pk, status=Message.Status.DONE,
                                 text=f"Answer {i}.\n\n" + "The harbour wall was built of granite blocks. " * 12)
    conversation_rename(conversation=conversation, title=title)
    return conversation


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_a_long_conversation_opens_at_the_bottom_with_the_composer_in_view_and_the_sidebar_reaches_others(
        chromium, live_daphne, viewport):
    from chat.seed import assistants_seed

    assistants_seed()
    user = user_make()
    other = _long_conversation(user, "Lighthouse maintenance schedule for winter")
    conversation = _long_conversation(
        user, "A very long title about the harbour, its granite wall, the tides and the fishing fleet in winter")
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    SHOTS.mkdir(exist_ok=True)
    try:
        sign_in(page, live_daphne["url"], user.email)
        page.goto(f"{live_daphne['url']}/app/chats/{conversation.pk}/")
        expect(page.locator("#chat-status")).to_have_text("Connected")
        expect(page.locator(".msg")).to_have_count(24)
        log = page.locator("#chat-log")
        page.wait_for_function("""() => { const l = document.getElementById("chat-log");
            return l.scrollHeight > l.clientHeight && l.scrollHeight - l.scrollTop - l.clientHeight < 2; }""")
        expect(page.locator(".msg--assistant").last).to_be_in_viewport()
        for locator in (page.get_by_label("Message Archivist"), page.get_by_role("button", name="Send")):
            _in_viewport(locator, viewport)
        assert page.evaluate("document.scrollingElement.scrollHeight <= window.innerHeight + 1")
        expect(page.locator("#stop")).to_be_hidden()
        title = page.locator("#chat-title")
        assert page.evaluate("(t) => t.scrollWidth > t.clientWidth", title.element_handle())  # ellipsis, not spill
        _in_viewport(title, {"width": viewport["width"], "height": viewport["height"]})
        page.screenshot(path=str(SHOTS / f"chat-long-{viewport['width']}.png"))

        log.evaluate("(l) => l.scrollTo(0, 0)")
        page.reload()
        page.wait_for_function("""() => { const l = document.getElementById("chat-log");
            return l.scrollHeight - l.scrollTop - l.clientHeight < 2; }""")  # a reload opens at the bottom again

        if viewport["width"] < 600:
            menu = page.get_by_role("button", name="Chats")
            expect(page.locator("#chat-sidebar")).to_be_hidden()
            menu.click()
            expect(menu).to_have_attribute("aria-expanded", "true")
            expect(page.get_by_label("Search your chats")).to_be_focused()
            page.wait_for_function("() => document.getElementById('chat-sidebar').getBoundingClientRect().left >= 0")
            page.screenshot(path=str(SHOTS / f"chat-drawer-{viewport['width']}.png"))
            page.keyboard.press("Escape")
            expect(menu).to_have_attribute("aria-expanded", "false")
            expect(page.locator("#chat-sidebar")).to_be_hidden()
            expect(menu).to_be_focused()
            menu.click()
        page.get_by_label("Search your chats").fill("lighthouse")
        sidebar = page.locator("#chat-list")
        expect(sidebar.locator("li:visible")).to_have_count(1)
        sidebar.get_by_role("link", name=re.compile("Lighthouse maintenance")).click()
        expect(page).to_have_url(re.compile(rf"/app/chats/{other.pk}/$"))
        expect(page.locator("#chat-title")).to_have_text("Lighthouse maintenance schedule for winter")

        page.goto(f"{live_daphne['url']}/app/chats/")
        expect(page.locator(".history-item").first).to_contain_text("just now")
        page.screenshot(path=str(SHOTS / f"chats-page-{viewport['width']}.png"))
    finally:
        context.close()
