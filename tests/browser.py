"""What the browser tests share: a page's check (a screenshot, no sideways scroll, no serious or critical
axe-core fault), the pieces of it for pages that need their own, and running a service call off Playwright's
event loop. The fixtures that open contexts and pages are in tests/conftest.py."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-results"  # git-ignored; look at the screenshots after a run
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # from npm (package.json)

# Elements past the right edge, leaving out those inside a box that scrolls sideways by design (a table's
# wrapper, a code block): its own scrollbar shows them.
_WIDE = """(width) => {
    const scrolls = (el) => {
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
            if (getComputedStyle(up).overflowX !== "visible") { return true; }
        }
        return false;
    };
    return [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > width + 1 && !scrolls(el))
        .slice(0, 5).map((el) => el.tagName + "." + el.className + "#" + el.id);
}"""

_AXE_RUN = """async (selector) => {
    const result = await axe.run(selector ? document.querySelector(selector) : document,
                                 {resultTypes: ["violations"]});
    return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" "))}));
}"""


def page_fits(page, name: str) -> None:
    """Nothing wider than the viewport: neither the page's scroll width nor any element outside a box that
    scrolls sideways by design. The failure names the first elements that stick out."""
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(_WIDE, width)
    assert scroll_width <= width and wide == [], f"{name}: {scroll_width}px wide at {width}px: {wide}"


def page_accessible(page, name: str, *, within: str | None = None) -> None:
    """No serious or critical axe-core violation in the page (or in the element `within` selects)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    violations = page.evaluate(_AXE_RUN, within)
    assert violations == [], f"{name}: {violations}"


def page_checked(page, name: str, *, full_page: bool = False, settle_ms: int = 0) -> None:
    """A screenshot named after the page and the viewport's width, then page_fits and page_accessible.
    `settle_ms` waits for something fading in (a popover) before the screenshot."""
    page.wait_for_load_state("load")
    if settle_ms:
        page.wait_for_timeout(settle_ms)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{page.viewport_size['width']}.png"), full_page=full_page)
    page_fits(page, name)
    page_accessible(page, name)


def sign_in(page, url: str, email: str, *, consent: bool = False) -> None:
    """Sign in on the login page as `email` (with the factories' password) and land on the app's home.
    `consent`: then answer the consent banner ("Necessary only"), which would cover screenshots."""
    from accounts.tests.factories import PASSWORD

    page.goto(url + "/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/app/$"))
    if consent:
        page.get_by_role("button", name="Necessary only").click()


def off_loop(function, *args, **kwargs):
    """Run a service call in a thread of its own: Playwright's sync API keeps an event loop in this
    one, where the channel layer's async_to_sync (a live toast, a progress event) refuses to run."""
    from django.db import connection

    outcome = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised in the test thread below
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
