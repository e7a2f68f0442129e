"""Text and voice chat in headless Chromium against a live Daphne and a real gpu worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD, user_make
from chat.models import Message

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
