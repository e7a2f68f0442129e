"""The staff analytics dashboard in headless Chromium against a live Daphne, at 1366×850 and 390×844: the chart
draws, the tables show the fixture's rows, nothing scrolls sideways, no serious axe-core violation, and a
funnel built with the form shows its table and chart. Screenshots go to test-results/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from accounts.tests.factories import staff_login, user_make
from tests.browser import AXE, SHOTS, page_accessible, page_fits

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [pytest.param({"width": 1366, "height": 850}, id="desktop"),
             pytest.param({"width": 390, "height": 844}, id="phone")]


def _events() -> None:
    """A week of page views from a few visitors, and ten users of whom some verify and fewer pay."""
    from onboarding.models import AnalyticsEvent

    today = datetime.combine(timezone.now().astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    rows = []
    for day in range(7):
        at = today - timedelta(days=day + 1)
        for n in range(3 + day % 3):
            rows.append(AnalyticsEvent(
                name="pageview", at=at + timedelta(hours=n), source="browser", visitor=f"v{day}-{n % 2}",
                path=["/", "/pricing", "/docs/getting-started"][n % 3], device=["desktop", "mobile"][n % 2],
                referrer_host="news.example" if n % 2 else "", utm_source="newsletter" if n == 1 else "",
                utm_campaign="spring" if n == 1 else ""))
    for n in range(10):
        user = user_make()
        start = today - timedelta(days=3, hours=n)
        rows.append(AnalyticsEvent(name="signed_up", at=start, source="server", user=user,
                                   plan="pro" if n % 3 == 0 else "free"))
        if n < 7:
            rows.append(AnalyticsEvent(name="email_verified", at=start + timedelta(minutes=5 + n), source="server",
                                       user=user))
        if n < 3:
            rows.append(AnalyticsEvent(name="paid", at=start + timedelta(hours=2), source="server", user=user))
    AnalyticsEvent.objects.bulk_create(rows)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_dashboard_and_a_funnel_at_this_size(chromium, live_daphne, viewport):
    SHOTS.mkdir(parents=True, exist_ok=True)
    url, width = live_daphne["url"], viewport["width"]
    _events()
    client = Client()
    staff_login(client, user_make(is_staff=True))
    context = chromium.new_context(viewport=viewport)
    # axe-core as an init script: the CSP (script-src 'self') blocks an inline one.
    context.add_init_script(path=str(AXE))
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME,
                          "value": client.cookies[settings.SESSION_COOKIE_NAME].value, "url": url}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.goto(url + "/staff/analytics/")
        expect(page.get_by_role("heading", name="Visitors and page views over time")).to_be_visible()
        chart = page.locator("#analytics-timeseries")
        expect(chart).to_have_attribute("data-ready", "true")
        expect(chart).to_be_visible()
        assert chart.bounding_box()["height"] > 100
        for table in ("#table-pages", "#table-referrers", "#table-devices", "#table-events", "#table-retention"):
            expect(page.locator(table)).to_be_visible()
        expect(page.locator("#table-pages tbody tr").first).to_contain_text("/")
        expect(page.locator("#table-events")).to_contain_text("signed_up")
        page_fits(page, "dashboard")
        page_accessible(page, "dashboard", within="#analytics")
        page.screenshot(path=str(SHOTS / f"analytics-dashboard-{width}.png"), full_page=True)

        # Build a funnel: three steps, a 1-day window, in order, broken down by plan.
        page.get_by_label("Step 1").select_option("signed_up")
        page.get_by_label("Step 2").select_option("email_verified")
        page.get_by_label("Step 3").select_option("paid")
        page.get_by_label("Conversion window").fill("1")
        page.get_by_label("Unit").select_option("days")
        page.get_by_label("Breakdown").select_option("plan")
        page.get_by_role("button", name="Build funnel").click()
        funnel = page.locator("#table-funnel")
        expect(funnel).to_be_visible()
        expect(funnel.locator("tbody tr")).to_have_count(3)
        expect(funnel.locator("tbody tr").nth(0)).to_contain_text("10")
        expect(funnel.locator("tbody tr").nth(1)).to_contain_text("70.0%")
        expect(funnel.locator("tbody tr").nth(2)).to_contain_text("3")
        expect(page.locator('table[data-group="free"]')).to_be_visible()
        expect(page.locator("#analytics-funnel")).to_have_attribute("data-ready", "true")
        expect(page.get_by_label("Step 2")).to_have_value("email_verified")  # the builder keeps the choice
        page.locator("#funnel-title").scroll_into_view_if_needed()
        page_fits(page, "funnel")
        page_accessible(page, "funnel", within="#analytics")
        page.screenshot(path=str(SHOTS / f"analytics-funnel-{width}.png"), full_page=True)
        assert errors == [], errors
    finally:
        context.close()
