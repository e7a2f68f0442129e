"""The consent banner and the tracker in headless Chromium against a live Daphne, at 1366×850 and 390×844:
no event request before a choice; page views and UI events after "Allow analytics" (rows in the
database); none with Global Privacy Control (an init script sets `navigator.globalPrivacyControl`) or
with `DNT: 1`; a withdrawal from the footer's "Privacy settings" stops them at once. Screenshots of the
banner go to test-results/."""

from __future__ import annotations

import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser import page_checked

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [pytest.param({"width": 1366, "height": 850}, id="desktop"),
             pytest.param({"width": 390, "height": 844}, id="phone")]
GPC = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true, configurable: true});"


def endpoint_hits(daphne) -> int:
    """Requests the live server answered at the event endpoint, refused ones included (django-prometheus'
    per-view counter). Playwright doesn't see beacons sent while a page unloads (Chromium sends them from
    the browser process), so the count is taken where they arrive."""
    request = urllib.request.Request(f"{daphne['url']}/metrics",
                                     headers={"Authorization": f"Bearer {daphne['metrics_token']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("django_http_requests_total_by_view_transport_method_total{")
                   and 'view="analytics_events"' in line))


def no_more_hits(daphne, before: int) -> bool:
    """True when no request reached the endpoint since `before`. A wrongly sent beacon is dispatched as its
    page unloads, before the next page loads; it gets a few seconds to arrive before we conclude."""
    wait_until(lambda: endpoint_hits(daphne) != before, deadline=3)
    return endpoint_hits(daphne) == before


def rows(**filters) -> list[tuple[str, str]]:
    from onboarding.models import AnalyticsEvent

    return list(AnalyticsEvent.objects.filter(**filters).order_by("id").values_list("name", "path"))


def wait_for_rows(expected: set[tuple[str, str]], deadline: float = 20) -> list[tuple[str, str]]:
    """Beacons arrive after the navigation that sent them; wait (up to a deadline) until they are stored."""
    stop = time.monotonic() + deadline
    while True:
        found = rows()
        if expected <= set(found) or time.monotonic() > stop:
            return found
        time.sleep(0.2)


def wait_until(condition, deadline: float = 20) -> None:
    stop = time.monotonic() + deadline
    while not condition() and time.monotonic() < stop:
        time.sleep(0.2)


def analytics_cookie(url: str) -> dict:
    """The consent cookie of a visitor who allowed analytics earlier (before turning a signal on)."""
    from django.conf import settings

    return {"name": "parley_consent", "value": f"analytics.{settings.PARLEY_ANALYTICS_POLICY_VERSION}.earlierChoice1",
            "url": url}


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_nothing_before_a_choice_events_after_allow_and_none_after_withdrawal(browser_context, live_daphne,
                                                                             viewport):
    from onboarding.models import ConsentRecord

    url = live_daphne["url"]
    page = browser_context(viewport).new_page()
    page.set_default_timeout(20_000)
    hits = endpoint_hits(live_daphne)

    page.goto(f"{url}/")
    banner = page.locator("#consent-banner")
    expect(banner).to_be_visible()
    expect(banner.get_by_role("button", name="Necessary only")).to_be_visible()
    expect(banner.get_by_role("button", name="Allow analytics")).to_be_visible()
    page_checked(page, "consent-banner")
    # Without a choice: a click on a tracked element and two navigations (each a pagehide) send nothing.
    page.locator("footer").get_by_role("link", name="Privacy", exact=True).click()
    page.wait_for_url(f"{url}/privacy/")
    page.goto(f"{url}/")
    assert no_more_hits(live_daphne, hits) and rows() == []

    banner.get_by_role("button", name="Allow analytics").click()
    expect(banner).to_be_hidden()
    page.locator("footer").get_by_role("link", name="Privacy", exact=True).click()
    page.wait_for_url(f"{url}/privacy/")
    stored = wait_for_rows({("pageview", "/"), ("footer.privacy", "/")})
    assert ("pageview", "/") in stored and ("footer.privacy", "/") in stored
    wait_until(lambda: endpoint_hits(live_daphne) > hits)
    assert endpoint_hits(live_daphne) > hits  # the counter sees beacons, so "no more hits" means something
    assert ConsentRecord.objects.get().choice == "analytics"

    # Withdraw from the footer link: the /privacy/ page view still queued must never be sent.
    hits = endpoint_hits(live_daphne)
    page.locator("footer").get_by_role("link", name="Privacy settings").click()
    expect(banner).to_be_visible()
    expect(banner.get_by_text("Your current choice: analytics allowed")).to_be_visible()
    page_checked(page, "consent-settings")
    banner.get_by_role("button", name="Necessary only").click()
    expect(banner).to_be_hidden()
    page.locator("footer").get_by_role("link", name="Privacy", exact=True).click()
    page.goto(f"{url}/")
    page.goto(f"{url}/accounts/login/")

    assert no_more_hits(live_daphne, hits)
    assert ("pageview", "/privacy/") not in rows()
    assert list(ConsentRecord.objects.order_by("id").values_list("choice", "source")) == \
        [("analytics", "banner"), ("necessary", "settings")]


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_with_global_privacy_control_nothing_is_sent_and_the_banner_says_why(browser_context, live_daphne,
                                                                            viewport):
    from onboarding.models import ConsentRecord

    url = live_daphne["url"]
    context = browser_context(viewport)
    context.add_init_script(GPC)
    context.add_cookies([analytics_cookie(url)])
    page = context.new_page()
    page.set_default_timeout(20_000)
    hits = endpoint_hits(live_daphne)

    page.goto(f"{url}/")
    banner = page.locator("#consent-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your browser asks sites not to track you (Global Privacy Control)")
    expect(banner.get_by_role("button", name="Allow analytics")).to_be_hidden()
    page_checked(page, "consent-gpc")
    # Reported once, with the signal: the earlier "analytics" no longer counts on the server either.
    wait_until(ConsentRecord.objects.exists)
    assert list(ConsentRecord.objects.values_list("choice", "source", "signal")) == [("necessary", "signal", "gpc")]

    page.locator("footer").get_by_role("link", name="Privacy", exact=True).click()
    page.wait_for_url(f"{url}/privacy/")
    expect(page.locator("#consent-banner")).to_be_hidden()  # said once; not again on every page
    page.goto(f"{url}/")

    assert no_more_hits(live_daphne, hits) and rows() == []
    assert ConsentRecord.objects.count() == 1


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_with_do_not_track_nothing_is_sent(browser_context, live_daphne, viewport):
    from onboarding.models import ConsentRecord

    url = live_daphne["url"]
    context = browser_context(viewport, extra_http_headers={"DNT": "1"})
    context.add_cookies([analytics_cookie(url)])
    page = context.new_page()
    page.set_default_timeout(20_000)
    hits = endpoint_hits(live_daphne)

    page.goto(f"{url}/privacy/")
    expect(page.locator("#privacy-settings")).to_contain_text("Your browser sends Do Not Track")
    page.locator("footer").get_by_role("link", name="Privacy settings").click()
    banner = page.locator("#consent-banner")
    expect(banner).to_contain_text("(Do Not Track)")
    expect(banner.get_by_role("button", name="Allow analytics")).to_be_hidden()
    page_checked(page, "consent-dnt")
    page.locator("footer").get_by_role("link", name="Privacy", exact=True).click()
    page.goto(f"{url}/")

    assert no_more_hits(live_daphne, hits) and rows() == []
    wait_until(ConsentRecord.objects.exists)
    assert list(ConsentRecord.objects.values_list("choice", "source", "signal")) == [("necessary", "signal", "dnt")]
