"""Push-to-talk in headless Chromium with a fake microphone playing espeak-ng speech."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.tests.factories import PASSWORD, user_make
from chat.models import Message

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


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
    import os

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


def test_push_to_talk_shows_transcripts_and_plays_the_spoken_reply(voice_browser, live_daphne, celery_worker,
                                                                   bundled_models):
    url = live_daphne["url"]
    user_make(email="voice@example.com")
    context = voice_browser.new_context(permissions=["microphone"])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url + "/accounts/login/")
    page.get_by_label("Email").fill("voice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/app/$"))
    page.goto(url + "/app/assistants/")
    page.get_by_role("button", name="Start a conversation with General assistant").click()
    expect(page.locator("#chat-status")).to_have_text("Connected")

    mic = page.get_by_role("button", name="Hold to talk")
    mic.hover()
    page.mouse.down()
    expect(mic).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#voice-partial")).to_contain_text(re.compile("capital", re.I), timeout=15_000)
    page.wait_for_timeout(800)  # let the rest of the question reach the server while the button is held
    page.mouse.up()

    spoken = page.locator(".msg--user").last.locator(".msg__body")
    expect(spoken).to_contain_text(re.compile("capital", re.I), timeout=30_000)
    expect(spoken).to_contain_text(re.compile("france", re.I))
    # Polled from here: wait_for_function compiles its predicate with eval, which the page's CSP forbids.
    deadline = time.monotonic() + 90
    while float(page.evaluate("Number(document.body.dataset.voicePlayedSeconds) || 0")) <= 0.5:
        assert time.monotonic() < deadline, "no reply audio was played within 90 s"
        page.wait_for_timeout(200)
    assert float(page.evaluate("document.body.dataset.voicePlayedSeconds")) > 0.5
    assert Message.objects.filter(role="user", via="voice").exists()
    context.close()
