"""The sign-up journey in headless Chromium against a live Daphne, as a new user lives it."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD, user_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONFIRM_LINK = re.compile(r"http://127\.0\.0\.1:\d+/accounts/confirm-email/[^\s]+/")


def _confirmation_link(log, email: str) -> str:
    """The verification link the console email backend printed for `email`."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log.read_text()
        start = text.rfind(f"To: {email}")
        if start != -1 and (match := CONFIRM_LINK.search(text, start)):
            return match.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no confirmation email for {email} in the server output")


def test_sign_up_verify_log_in_and_see_the_app_shell(page, live_daphne):
    url, email = live_daphne["url"], "rosa@example.com"

    page.goto(url + "/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.get_by_role("link", name="Create your account").first.click()

    page.get_by_label("Email").fill(email)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("main")).to_contain_text(re.compile("verify your email", re.IGNORECASE))

    page.goto(_confirmation_link(live_daphne["log"], email))
    page.locator("main form button[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/app/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("rosa")
    expect(page.locator("main")).to_contain_text("rosa's team")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)


def test_staff_log_in_to_the_themed_admin(page, live_daphne):
    user_make(email="ops@example.com", is_staff=True, is_superuser=True)

    page.goto(live_daphne["url"] + "/admin/")
    page.locator("input[name=username]").fill("ops@example.com")
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[type=submit]").click()

    expect(page.locator("#site-name")).to_contain_text("Parley admin")
    expect(page.get_by_role("link", name="Teams", exact=True)).to_be_visible()
