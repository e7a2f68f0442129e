"""Plans on the pages, in headless Chromium against a live Daphne and a real gpu worker: the chat composer's
model picker, and the staff savings chart in admin (Chart.js from npm)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tests.factories import staff_login, user_make
from billing.tests.factories import offer_make
from chat.models import Conversation, Message
from chat.tests.factories import conversation_make
from inference.models import ReferencePrice, UsageRecord

SHOTS = Path(__file__).resolve().parent.parent / "test-results"
VIEWPORTS = [{"width": 1366, "height": 850}, {"width": 390, "height": 844}]

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _signed_in(chromium, url: str, user, viewport: dict, *, staff: bool = False):
    """A browser context carrying the session of `user` (staff: with the authenticator step done)."""
    client = Client()
    if staff:
        staff_login(client, user)
    else:
        client.force_login(user)
    context = chromium.new_context(viewport=viewport)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": url}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    return context, page


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_the_model_picker_sends_the_choice_and_the_reply_says_who_answered(chromium, live_daphne, celery_worker,
                                                                           bundled_models, viewport):
    offer_make()  # Parley Pro, the plan the quality route names
    url = live_daphne["url"]
    user = user_make()
    conversation = conversation_make(user=user)
    context, page = _signed_in(chromium, url, user, viewport)
    try:
        page.goto(f"{url}/app/chats/{conversation.pk}/")
        expect(page.locator("#chat-status")).to_have_text("Connected")
        picker = page.get_by_label("Model", exact=True)
        expect(picker).to_be_visible()
        # The assistant's route is preselected; the quality route is Pro's, so it is there but disabled, saying so.
        expect(picker).to_have_value(conversation.assistant.route_alias)
        quality = picker.locator("option[value='chat-quality']")
        expect(quality).to_be_disabled()
        expect(quality).to_contain_text("included in Parley Pro")

        picker.select_option("smollm2-135m")
        expect(page.locator("#model-info")).to_contain_text("runs here")
        expect(page.locator("#model-info")).to_contain_text("a request")
        page.get_by_label(f"Message {conversation.assistant.name}").fill("Say hello in five words.")
        page.keyboard.press("Enter")
        reply = page.locator(".msg--assistant").last
        expect(reply.locator(".msg__timing")).to_contain_text("First token", timeout=120_000)
        expect(reply.locator(".msg__model")).to_have_text(re.compile(r"^Answered by SmolLM2 .*\(local\)$"))
        send = page.get_by_role("button", name="Send")
        send.scroll_into_view_if_needed()
        expect(send).to_be_in_viewport()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"chat-model-picker-{viewport['width']}.png"))

        page.reload()  # the choice is the conversation's now
        expect(page.get_by_label("Model", exact=True)).to_have_value("smollm2-135m")
    finally:
        context.close()
    assert Conversation.objects.get(pk=conversation.pk).model == "smollm2-135m"
    assert Message.objects.get(role="assistant").model_name == "smollm2-135m"


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_staff_see_savings_by_day_as_a_chart(chromium, live_daphne, viewport):
    from inference.catalog import REFERENCE_PRICES

    for row in REFERENCE_PRICES:
        ReferencePrice.objects.update_or_create(task=row["task"], name=row["name"], defaults=row)
    user = user_make()
    for days_ago in (2, 1, 0):
        record = UsageRecord.objects.create(request_id=f"s{days_ago}", user=user, model_name="qwen", task="chat",
                                            prompt_tokens=1_000_000, completion_tokens=1_000_000,
                                            duration_ms=3_600_000)
        UsageRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    staff = user_make(is_staff=True, is_superuser=True)
    context, page = _signed_in(chromium, live_daphne["url"], staff, viewport, staff=True)
    try:
        page.goto(live_daphne["url"] + "/admin/inference/usagerecord/")
        page.get_by_role("link", name="Savings by day").click()
        expect(page.locator("#savings-chart")).to_have_attribute("data-ready", "true")
        expect(page.locator("#savings-by-day tbody tr")).to_have_count(3)
        # gpt-4o-mini: $0.15 + $0.60 per million in and out; an hour of compute at the default $0.10.
        expect(page.locator("#savings-total")).to_contain_text("over 3 requests")
        expect(page.locator("#savings-by-day tbody tr").first).to_contain_text("$0.7500")
        box = page.locator("#savings-chart").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 200
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"admin-savings-{viewport['width']}.png"), full_page=True)
    finally:
        context.close()
