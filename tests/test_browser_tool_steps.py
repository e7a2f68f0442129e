"""A reply that called tools, in headless Chromium: each step is one collapsed line above the reply
("used knowledge_search ('…') → 3 passages") that opens onto what was asked and what came back, and a long
result wraps inside the message instead of widening the page. The steps are stored on the message as the
chat turn records them (chat/turns.py); the model is not needed to show them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from chat.models import Message
from chat.seed import assistants_seed
from chat.tests.factories import conversation_make
from tests.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RESULTS = Path(__file__).resolve().parents[1] / "test-results"
STEPS = [
    {"name": "knowledge_search", "arguments": {"query": "notice period"}, "ok": True,
     "summary": "used knowledge_search ('notice period') → 3 passages",
     "content": "[1] Leave policy\nEmployees give four weeks' notice.\n" + "x" * 400, "data": {}},
    {"name": "send_email", "arguments": {"to": "someone@elsewhere.example", "subject": "Notice"}, "ok": False,
     "summary": "send_email refused: not you or a member of your teams", "content": "Error: not allowed", "data": {}},
]


@pytest.mark.parametrize(("width", "height"), [(1366, 850), (390, 844)])
def test_tool_steps_show_as_collapsed_lines_that_open_onto_the_call_and_its_result(chromium, live_daphne, width,
                                                                                     height):
    assistants_seed()
    user = user_make(email=f"steps{width}@example.com")
    conversation = conversation_make(user=user)
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER,
                                      text="What is the notice period? Email it to my colleague.")
    Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, parent=question,
                           text="The notice period is four weeks [1].", status=Message.Status.DONE,
                           model_name="qwen2.5-coder-0.5b", tool_steps=STEPS)
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        sign_in(page, live_daphne["url"], user.email)
        page.goto(f"{live_daphne['url']}/app/chats/{conversation.pk}/")

        reply = page.locator(".msg--assistant").last
        steps = reply.locator(".msg__tool")
        expect(steps).to_have_count(2)
        first, second = steps.nth(0), steps.nth(1)
        expect(first.locator("summary")).to_have_text("used knowledge_search ('notice period') → 3 passages")
        expect(second).to_have_class(re.compile("msg__tool--failed"))
        expect(first.locator("pre").first).to_be_hidden()  # collapsed until opened
        first.locator("summary").click()
        expect(first.locator("pre").first).to_contain_text('"query": "notice period"')
        expect(first.locator("pre").last).to_contain_text("four weeks' notice")
        # The steps come before the reply's text, and nothing runs off the side of the page.
        assert first.bounding_box()["y"] < reply.locator(".msg__body").bounding_box()["y"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        box = first.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
        RESULTS.mkdir(exist_ok=True)
        page.screenshot(path=str(RESULTS / f"tool-steps-{width}x{height}.png"), full_page=True)
    finally:
        context.close()
