"""Buying Parley Pro in headless Chromium against a live Daphne and the localstripe stand-in.

Billing time moves through billing.clock (an offset in Redis that Daphne reads too); the charge run
is the beat task's body, called here after the clock moved. No sleeping."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from billing import clock
from billing.services import charge_due_run
from billing.tests.factories import offer_make
from tests.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page, url: str, email: str) -> None:
    user_make(email=email)
    sign_in(page, url, email)


def _buy(page, url: str, card: str) -> None:
    nav = page.get_by_role("navigation", name="Main")
    # Until static/js/shell.js has run, the menu's links show and its button does nothing; a click then
    # would be undone when the script closes the menu.
    expect(page.locator("html")).to_have_attribute("data-shell", "ready")
    nav.get_by_role("button", name=re.compile("account menu")).click()  # Billing is in the account menu
    nav.get_by_role("link", name="Billing").click()
    page.get_by_role("link", name="Get Parley Pro").click()
    page.get_by_label("Card number").fill(card)
    page.get_by_label("I agree to these terms").check()
    page.get_by_role("button", name=re.compile("Buy Parley Pro")).click()
    expect(page.locator("main")).to_contain_text("Welcome to Parley Pro")


def test_buy_cancel_then_charge_then_installments(page, live_daphne, stand_in, djstripe_local):
    url = live_daphne["url"]
    offer_make()

    # 1. Buy with the local test-card form, see the countdown, cancel at no charge.
    _log_in(page, url, "ana@example.com")
    _buy(page, url, "4242 4242 4242 4242")
    expect(page.get_by_test_id("countdown")).to_contain_text("23 hours 59 minutes left to cancel at no charge")
    page.get_by_role("link", name="Cancel at no charge…").click()
    page.get_by_role("button", name="Yes, cancel at no charge").click()
    expect(page.get_by_test_id("status")).to_have_text("Canceled")
    expect(page.locator("main")).to_contain_text("You were not charged")
    clock.clock_advance(seconds=25 * 3600)
    charge_due_run()
    assert stand_in.payment_intents() == []

    # 2. A second user buys; a day later the charge run takes $1,999.00 once.
    page.context.clear_cookies()
    _log_in(page, url, "ben@example.com")
    _buy(page, url, "4242424242424242")
    clock.clock_advance(seconds=24 * 3600 + 60)
    charge_due_run()
    page.reload()
    expect(page.get_by_test_id("status")).to_have_text("Paid")
    expect(page.get_by_test_id("history")).to_contain_text("$1,999.00")
    expect(page.get_by_test_id("history")).to_contain_text("Succeeded")
    assert [pi["amount"] for pi in stand_in.succeeded()] == [199900]

    # 3. A third user's card saves but declines charges: the fallback installments appear.
    page.context.clear_cookies()
    _log_in(page, url, "cleo@example.com")
    _buy(page, url, "4000000000000341")
    clock.clock_advance(seconds=24 * 3600 + 60)
    charge_due_run()
    page.reload()
    expect(page.get_by_test_id("status")).to_have_text("Past due")
    expect(page.get_by_test_id("installments")).to_contain_text("0 of 100")
    expect(page.get_by_test_id("installments")).to_contain_text("$19.99")
    expect(page.get_by_test_id("history")).to_contain_text("Installment 1 of 100")
    expect(page.get_by_test_id("history")).to_contain_text("Declined")
    expect(page.get_by_role("button", name=re.compile("Pay what is due now"))).to_be_visible()
