"""The sign-up journey in headless Chromium against a live Daphne, as a new user lives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD, confirmation_link, user_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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

    # One click on the link confirms the address and signs in, in the browser that signed up.
    page.goto(confirmation_link(live_daphne["log"], email))
    expect(page).to_have_url(re.compile(r"/app/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Rosa")  # not the raw "rosa"
    expect(page.locator("main")).to_contain_text("Rosa's team")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Home")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)

    # Another browser logs in with the password, now that the address is verified.
    other = page.context.browser.new_context(viewport=page.viewport_size).new_page()
    try:
        other.goto(url + "/accounts/login/")
        other.get_by_label("Email").fill(email)
        other.get_by_label("Password").fill(PASSWORD)
        other.locator("main form button[type=submit]").click()
        expect(other).to_have_url(re.compile(r"/app/$"))
        expect(other.get_by_role("heading", level=1)).to_have_text("Welcome, Rosa")
    finally:
        other.context.close()


@pytest.mark.parametrize(("width", "height"), [(1366, 850)])
def test_staff_reach_admin_through_allauth_and_an_authenticator_app(chromium, live_daphne, tmp_path, width, height):
    """Admin has no log-in form of its own: allauth's, then a TOTP set up on the way, then admin."""
    from accounts.tests.factories import totp_code

    user_make(email="ops@example.com", is_staff=True, is_superuser=True)
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        page.goto(live_daphne["url"] + "/admin/")
        expect(page).to_have_url(re.compile(r"/accounts/login/\?next=%2Fadmin%2F"))
        page.get_by_label("Email").fill("ops@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.locator("main form button[type=submit]").click()

        # Adding an authenticator is a sensitive change: allauth asks for the password once more.
        expect(page).to_have_url(re.compile(r"/accounts/reauthenticate/"))
        expect(page.locator("main")).to_contain_text("Admin needs a second factor")
        page.get_by_label("Password").fill(PASSWORD)
        page.locator("main form button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/"))
        page.screenshot(path=str(tmp_path / "admin-totp-activate.png"), full_page=True)
        secret = page.locator("#authenticator_secret").input_value()
        page.locator("input[name=code]").fill(totp_code(secret))
        page.locator("main form button[type=submit]").click()
        expect(page.locator("main")).to_contain_text(re.compile("recovery codes", re.IGNORECASE))

        page.goto(live_daphne["url"] + "/admin/")
        expect(page).to_have_url(re.compile(r"/accounts/2fa/reauthenticate/"))
        page.locator("input[name=code]").fill(totp_code(secret))
        page.locator("main form button[type=submit]").click()

        expect(page.locator("#site-name")).to_contain_text("Parley admin")
        expect(page.get_by_role("link", name="Teams", exact=True)).to_be_visible()
        for directory in (tmp_path, Path(__file__).resolve().parents[1] / "test-results"):
            directory.mkdir(exist_ok=True)
            page.screenshot(path=str(directory / "admin-after-totp.png"), full_page=True)
    finally:
        context.close()
