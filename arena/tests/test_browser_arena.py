"""The arena in headless Chromium against a live Daphne and a real gpu worker: from chat's Compare link to
two blind answers streaming side by side, a vote, the names, and the leaderboard."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from arena.models import Battle
from inference.models import UsageRecord
from tests.browser import sign_in

SHOTS = Path(__file__).resolve().parent.parent.parent / "test-results"
VIEWPORTS = [{"width": 1366, "height": 850}, {"width": 390, "height": 844}]

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _fits(page, viewport: dict) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_compare_vote_reveal_and_the_leaderboard(chromium, live_daphne, celery_worker, bundled_models, viewport):
    from chat.services import assistant_create, conversation_create

    url = live_daphne["url"]
    user = user_make()
    assistant = assistant_create(owner=user, name="Brief", system_prompt="Answer in one short sentence.",
                                 route_alias="smollm2-135m", max_tokens=32)
    conversation = conversation_create(user=user, assistant=assistant)
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    SHOTS.mkdir(exist_ok=True)
    width = viewport["width"]
    try:
        sign_in(page, url, user.email)
        page.get_by_role("button", name="Necessary only").click()  # the consent banner would cover the page
        page.goto(f"{url}/app/chats/{conversation.pk}/")
        page.get_by_label("Message Brief").fill("Name one colour of the rainbow.")
        page.get_by_role("link", name="Compare").click()

        expect(page).to_have_url(re.compile(r"/app/arena/\?prompt="))
        expect(page.get_by_label("Prompt")).to_have_value("Name one colour of the rainbow.")
        page.get_by_label("Longest answer").select_option("64")
        _fits(page, viewport)
        page.screenshot(path=str(SHOTS / f"arena-home-{width}.png"), full_page=True)
        page.get_by_role("button", name="Compare").click()

        expect(page).to_have_url(re.compile(r"/app/arena/battles/\d+/$"))
        battle = Battle.objects.get(user=user)
        a, b = page.locator("#answer-a-body"), page.locator("#answer-b-body")
        expect(a).not_to_be_empty(timeout=120_000)
        expect(b).not_to_be_empty(timeout=120_000)
        vote = page.get_by_role("button", name="Model A is better")
        expect(vote).to_be_enabled(timeout=120_000)  # both answers are complete
        expect(page.locator("#answer-a-metrics")).to_contain_text("First token")
        expect(page.locator("#answer-b-metrics")).to_contain_text("tokens")
        body = page.locator("main").inner_text()
        assert battle.model_a not in body and battle.model_b not in body  # blind until the vote

        box_a, box_b = page.locator("#answer-a").bounding_box(), page.locator("#answer-b").bounding_box()
        if width > 760:  # side by side
            assert abs(box_a["y"] - box_b["y"]) < 2 and box_b["x"] > box_a["x"] + box_a["width"]
        else:  # stacked
            assert box_b["y"] >= box_a["y"] + box_a["height"] and abs(box_a["x"] - box_b["x"]) < 2
        _fits(page, viewport)
        page.screenshot(path=str(SHOTS / f"arena-answers-{width}.png"), full_page=True)

        vote.click()
        reveal = page.locator("#arena-reveal")
        expect(reveal).to_have_text(f"Model A was {battle.model_a}; Model B was {battle.model_b}.")
        expect(page.locator("#answer-a-title")).to_contain_text(battle.model_a)
        _fits(page, viewport)
        page.screenshot(path=str(SHOTS / f"arena-revealed-{width}.png"), full_page=True)

        page.locator("#arena-vote").get_by_role("link", name="Leaderboard").click()
        winner = page.locator(f'tr[data-model="{battle.model_a}"]')
        loser = page.locator(f'tr[data-model="{battle.model_b}"]')
        expect(winner.locator('[data-col="wins"]')).to_have_text("1")
        expect(winner.locator('[data-col="rating"]')).to_have_text("1016")
        expect(loser.locator('[data-col="losses"]')).to_have_text("1")
        expect(winner.locator("td").first).to_have_text("1")  # ranked first
        expect(winner.locator('[data-col="ttft"]')).to_contain_text(" ms")  # the ledger's figures, beside
        expect(winner.locator('[data-col="cost"]')).to_contain_text("$")
        page.screenshot(path=str(SHOTS / f"arena-leaderboard-{width}.png"), full_page=True)
        for cell in ("rating", "ttft", "speed", "cost"):  # on screen, not behind a horizontal scroll
            box = winner.locator(f'[data-col="{cell}"]').bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (cell, box)
        _fits(page, viewport)
    finally:
        context.close()

    battle.refresh_from_db()
    assert battle.vote == "a" and battle.status == "answered"
    answers = list(battle.answers.order_by("side"))
    assert [a.model_name for a in answers] == [battle.model_a, battle.model_b]
    assert all(a.status == "done" and a.text and a.request_id and a.ttft_ms for a in answers)
    # Both answers went through the normal serving path: each has its ledger row, for the model it names.
    deadline = time.monotonic() + 10
    while UsageRecord.objects.filter(request_id__in=[a.request_id for a in answers]).count() < 2:
        assert time.monotonic() < deadline, "the worker wrote no usage rows for the answers"
        time.sleep(0.1)
    rows = {r.request_id: r.model_name for r in UsageRecord.objects.filter(
        request_id__in=[a.request_id for a in answers])}
    assert rows == {a.request_id: a.model_name for a in answers}
