"""Voice in headless Chromium with a fake microphone playing espeak-ng speech: push-to-talk with a mouse
that wanders off the mic before it lets go, and hands-free for two turns in a row."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.tests.factories import user_make
from chat.models import Message
from tests.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent.parent / "test-results"  # git-ignored; look at them after a run
DESKTOP, PHONE = {"width": 1366, "height": 850}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def microphone_clip(tmp_path_factory):
    """0.3 s of silence, the question, then silence: what the fake microphone plays in a loop."""
    directory = tmp_path_factory.mktemp("mic")
    raw, clip = directory / "raw.wav", directory / "question.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), "what is the capital of France"], check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(clip), "pad", "0.3", "4"],
                   check=True)
    return clip


@pytest.fixture(scope="module")
def voice_browser(microphone_clip):
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={microphone_clip}",
                      "--autoplay-policy=no-user-gesture-required"],
            )
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def _voice_page(voice_browser, url: str, viewport: dict, email: str):
    """A signed-in page on a new conversation with a terse assistant (short replies keep playback short),
    and the voice socket's frames from the server, as the page received them."""
    from chat.services import assistant_create, conversation_create

    user = user_make(email=email)
    assistant = assistant_create(owner=user, name="Brief", system_prompt="Answer in one short sentence.",
                                 max_tokens=24)
    conversation = conversation_create(user=user, assistant=assistant)
    context = voice_browser.new_context(viewport=viewport, permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    received: list[dict] = []
    page.on("websocket", lambda ws: "/ws/voice/" in ws.url and ws.on(
        "framereceived", lambda payload: isinstance(payload, str) and received.append(json.loads(payload))))
    sign_in(page, url, email)
    page.goto(f"{url}/app/chats/{conversation.pk}/")
    expect(page.locator("#chat-status")).to_have_text("Connected")
    return context, page, received


def _poll(page, script: str, predicate, seconds: float, what: str):
    # Polled from Python: wait_for_function compiles its predicate with eval, which the page's CSP forbids.
    deadline = time.monotonic() + seconds
    while not predicate(value := page.evaluate(script)):
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s (last: {value!r})"
        page.wait_for_timeout(100)
    return value


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_mouse_press_and_a_release_elsewhere_sends_the_question_and_plays_the_reply(
        voice_browser, live_daphne, celery_worker, bundled_models, viewport):
    context, page, received = _voice_page(voice_browser, live_daphne["url"], viewport, "ptt@example.com")
    size = viewport["width"]
    try:
        mic = page.get_by_role("button", name="Hold to talk")
        expect(page.get_by_role("switch", name="Hands-free")).not_to_be_checked()
        mic.scroll_into_view_if_needed()
        before = mic.bounding_box()
        page.mouse.move(before["x"] + before["width"] / 2, before["y"] + before["height"] / 2)
        page.mouse.down()
        expect(mic).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#voice-state")).to_have_text("Listening… release to send.")
        # Nothing opens above or around the mic and pushes it: the pointer stays on it.
        assert mic.bounding_box() == before
        level = _poll(page, "document.getElementById('voice-level').value", lambda v: v > 0, 15,
                      "the level meter never moved")
        assert 0 < level <= 1
        expect(page.locator("#voice-level")).to_be_visible()
        expect(page.locator("#voice-partial")).to_contain_text(re.compile("capital", re.I), timeout=30_000)
        page.wait_for_timeout(800)  # let the rest of the question reach the server while the button is held
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"voice-listening-{size}.png"))
        assert mic.bounding_box() == before
        page.mouse.move(5, 5, steps=4)  # wander off the mic (and out of the composer) before letting go
        page.mouse.up()

        expect(mic).to_have_attribute("aria-pressed", "false")
        expect(page.locator("#voice-state")).not_to_have_text("Listening… release to send.")
        spoken = page.locator(".msg--user").last.locator(".msg__body")
        expect(spoken).to_contain_text(re.compile("capital", re.I), timeout=60_000)
        _poll(page, "Number(document.body.dataset.voicePlayedSeconds) || 0", lambda v: v > 0.5, 120,
              "no reply audio was played")
        expect(page.locator(".msg--assistant").last.locator(".msg__body")).not_to_be_empty()
        page.screenshot(path=str(SHOTS / f"voice-replied-{size}.png"))
        assert [f for f in received if f["type"] == "error"] == []
        assert Message.objects.filter(role="user", via="voice").count() == 1
    finally:
        context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_hands_free_answers_then_listens_again_for_the_next_turn(voice_browser, live_daphne, celery_worker,
                                                                 bundled_models, viewport):
    context, page, received = _voice_page(voice_browser, live_daphne["url"], viewport, "vad@example.com")
    try:
        # Push-to-talk is the default, and holding the space bar (outside a text field) is the mic too.
        mic = page.locator("#mic")
        page.locator("#chat-title").click()
        page.keyboard.down("Space")
        expect(mic).to_have_attribute("aria-pressed", "true")
        page.get_by_role("switch", name="Hands-free").check()  # switching mode cancels the utterance
        page.keyboard.up("Space")
        expect(mic).to_have_attribute("aria-pressed", "false")
        expect(mic).to_have_text("Tap to talk")
        mic.scroll_into_view_if_needed()  # else the click scrolls the page, and everything with it
        before = mic.bounding_box()
        mic.click()
        expect(mic).to_have_attribute("aria-pressed", "true")
        expect(mic).to_have_text("Tap to stop")
        assert mic.bounding_box() == before
        _poll(page, "document.getElementById('voice-level').value", lambda v: v > 0, 15, "the level meter never moved")
        page.screenshot(path=str(SHOTS / f"voice-hands-free-listening-{viewport['width']}.png"))

        # The loop says the question every 6.3 s: each pause ends a turn, and after the spoken reply
        # the page listens again by itself, so a second turn follows with no click.
        replies = page.locator(".msg--assistant[data-status=done]")
        expect(replies).to_have_count(1, timeout=120_000)
        first_played = _poll(page, "Number(document.body.dataset.voicePlayedSeconds) || 0", lambda v: v > 0.3, 60,
                             "the first reply was not played")
        expect(replies).to_have_count(2, timeout=150_000)
        _poll(page, "Number(document.body.dataset.voicePlayedSeconds) || 0", lambda v: v > first_played, 60,
              "the second reply was not played")
        page.screenshot(path=str(SHOTS / f"voice-hands-free-second-turn-{viewport['width']}.png"))
        kinds = [f["type"] for f in received]
        assert kinds.count("speech_end") >= 2 and kinds.count("done") >= 2
        assert [f for f in received if f["type"] == "error"] == []

        mic.click()  # switched off: nothing listens any more
        expect(mic).to_have_attribute("aria-pressed", "false")
        assert Message.objects.filter(role="user", via="voice").count() >= 2
        # The choice is remembered.
        page.reload()
        expect(page.get_by_role("switch", name="Hands-free")).to_be_checked()
        expect(page.locator("#mic")).to_have_text("Tap to talk")
    finally:
        context.close()
