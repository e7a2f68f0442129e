"""The S-7 evaluation page in headless Chromium against a live Daphne and a real worker with the tiny model, at
1366×850 and 390×844: the quality-against-speed chart is drawn beside its table, nothing overflows on a phone,
no serious axe-core violation, the item form shows the chosen skill's fields and the service's message; and a
challenge started from the page shows its progress live, ends with the model's card and toasts the S-7
Challenger badge. Screenshots go to test-results/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from evaluation.s7 import SKILLS
from evaluation.tests.page_factories import finished_run_make
from tests.browser import SHOTS, off_loop, page_checked, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TINY = "smollm2-135m"
VIEWPORTS = [pytest.param({"width": 1366, "height": 850}, id="desktop"),
             pytest.param({"width": 390, "height": 844}, id="phone")]
# Every evaluation.run event the page's socket delivered, kept from the first load on.
RECORD_EVENTS = """window.__evalEvents = [];
document.addEventListener("parley:live", (event) => {
  if (event.detail.event === "evaluation.run") window.__evalEvents.push(event.detail.data);
});"""


@pytest.fixture(autouse=True)
def seeded(db) -> None:
    from onboarding.seed import onboarding_seed

    onboarding_seed()


def painted_pixels(page, selector: str) -> int:
    return page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted += 1;
        return painted;
    }""", selector)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_page_draws_the_chart_beside_its_table_and_fits_the_screen(browser_page, live_daphne, bundled_models,
                                                                       viewport):
    url, width = live_daphne["url"], viewport["width"]
    staff = user_make(is_staff=True)
    # Three models measured (rows as a finished run writes them): fast and cheap, slow and good, in between.
    off_loop(finished_run_make, user=staff, model="chat-fast", tokens_per_s=24.0, cost="0.0002")
    off_loop(finished_run_make, user=staff, model="qwen2.5-coder-0.5b", tokens_per_s=13.8, ttft_ms=250.0,
             cost="0.0011", passes={skill: [True, True, skill != "code"] for skill in SKILLS})
    off_loop(finished_run_make, user=staff, model="chat-default", tokens_per_s=15.2, cost="0.0006",
             passes={skill: [True, skill in ("facts", "safety")] for skill in SKILLS})
    user = user_make(email=f"vera.{width}@example.com")
    page = browser_page(viewport)
    sign_in(page, url, user.email, consent=True)

    nav = page.get_by_role("navigation", name="Main")
    if width < 700:
        page.get_by_role("button", name="Menu").click()
    nav.get_by_role("link", name="Evaluation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("S-7 evaluation")
    canvas = page.locator("#eval-scatter")
    expect(canvas).to_have_attribute("data-ready", "true")
    expect(canvas).to_have_attribute("data-points", "3")
    assert painted_pixels(page, "#eval-scatter") > 2000
    rows = page.locator("#eval-figures tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("qwen2.5-coder-0.5b")  # best score first
    expect(page.locator("#eval-legend")).to_contain_text("Point size: cost per 1,000 requests")
    expect(page.locator("#eval-matrix tbody tr")).to_have_count(7)
    # Side by side on a desktop, one above the other on a phone.
    chart_box, table_box = canvas.bounding_box(), page.locator("#eval-figures").bounding_box()
    if width >= 1024:
        assert abs(chart_box["y"] - table_box["y"]) < 120 and table_box["x"] > chart_box["x"] + chart_box["width"]
    else:
        assert table_box["y"] > chart_box["y"] + chart_box["height"]
    page_checked(page, "evaluation-page", full_page=True)

    # The item form shows the chosen skill's fields; a bad item gets the service's message.
    form = page.locator("#item-form")
    form.get_by_label("Skill").select_option("reasoning")
    expect(form.get_by_label("Expected number (reasoning)")).to_be_visible()
    expect(form.get_by_label("Checks (instruction following)")).to_be_hidden()
    form.get_by_label("Prompt").fill("What is 6 times 7?")
    form.get_by_label("Expected number (reasoning)").fill("forty-two")
    form.get_by_role("button", name="Add the item").click()
    expect(page.locator("#item-error")).to_contain_text("Expected number: 'forty-two' is not a number")
    expect(page.locator("#item-form").get_by_label("Prompt")).to_have_value("What is 6 times 7?")
    page.locator("#item-form").get_by_label("Expected number (reasoning)").fill("42")
    page.locator("#item-form").get_by_role("button", name="Add the item").click()
    expect(page.locator(".eval-items")).to_contain_text("What is 6 times 7?")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=re.compile(r"^Delete reasoning item")).click()
    expect(page.locator("main")).to_contain_text("No items yet.")

    # A finished challenge's page: the model's card and every item, at this width too.
    run = off_loop(finished_run_make, user=user, model=TINY, kind="challenge",
                   passes={skill: [skill in ("facts", "code")] for skill in SKILLS})
    page.goto(url + f"/app/evaluation/runs/{run.pk}/")
    expect(page.locator("#card-score")).to_have_text("29%")
    expect(page.locator("#run-results .eval-result")).to_have_count(7)
    page.locator("#prompt-5 summary").click()  # the grounded item's long prompt, opened
    page_checked(page, "evaluation-run-card", full_page=True)


def test_a_challenge_started_from_the_page_shows_progress_then_the_card_and_the_badge(
        browser_page, live_daphne, celery_worker, bundled_models):
    url = live_daphne["url"]
    user = user_make(email="cora@example.com")
    page = browser_page({"width": 1366, "height": 850})
    page.add_init_script(RECORD_EVENTS)
    sign_in(page, url, user.email, consent=True)

    page.goto(url + "/app/evaluation/")
    challenge = page.locator("#challenge")
    challenge.get_by_label("Model").select_option(TINY)
    challenge.get_by_role("button", name="Take the challenge").click()

    expect(page).to_have_url(re.compile(r"/app/evaluation/runs/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"S-7 challenge: {TINY}")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    progress = page.locator("#run-body progress")
    expect(progress).to_have_attribute("max", "7")
    # Items appear as they are graded, before the run ends.
    expect(page.locator("#run-results .eval-result").first).to_be_visible(timeout=180_000)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "evaluation-challenge-progress-1366.png"))
    card = page.locator("#model-card")
    expect(card).to_be_visible(timeout=300_000)
    expect(card).to_contain_text("your model's card")
    expect(page.locator("#card-skills tbody tr")).to_have_count(7)
    expect(page.locator("#run-results .eval-result")).to_have_count(7)
    expect(page.locator("#run-body progress")).to_have_count(0)
    events = page.evaluate("window.__evalEvents")
    assert events[-1]["status"] == "done" and events[-1]["percent"] == 100
    assert len({e["done"] for e in events}) >= 2  # the bar moved through the run, not only to its end
    toast = page.locator(".ob-toast").filter(has_text="S-7 Challenger")
    expect(toast).to_be_visible(timeout=30_000)
    page.wait_for_timeout(400)
    page.screenshot(path=str(SHOTS / "evaluation-challenge-card-1366.png"), full_page=True)
    page_checked(page, "evaluation-run", full_page=True)
