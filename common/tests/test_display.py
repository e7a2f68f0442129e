"""Money and durations as people read them (admin list columns use these)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.display import duration_from_ms, duration_from_seconds, money_from_amount, money_from_cents


@pytest.mark.parametrize(("cents", "currency", "shown"), [
    (199900, "usd", "$1,999.00 USD"),
    (1999, "USD", "$19.99 USD"),
    (0, "usd", "$0.00 USD"),
    (-500, "eur", "-€5.00 EUR"),
    (1999, "jpy", "¥1,999 JPY"),  # zero-decimal currency: the amount is already whole yen
    (123456, "sek", "1,234.56 SEK"),
    (None, "usd", ""),
])
def test_cents_read_as_money_with_the_currency(cents, currency, shown):
    assert money_from_cents(cents, currency) == shown


@pytest.mark.parametrize(("amount", "shown"), [
    (Decimal("0.000123"), "$0.000123 USD"),
    (Decimal("0.0234"), "$0.0234 USD"),
    (Decimal("0.5"), "$0.50 USD"),
    (Decimal("1234.5"), "$1,234.50 USD"),
    (Decimal("0"), "$0.00 USD"),
])
def test_a_cost_keeps_its_significant_digits_below_a_dollar(amount, shown):
    assert money_from_amount(amount) == shown


@pytest.mark.parametrize(("seconds", "shown"), [
    (0.35, "350 ms"),
    (0.9996, "1.0 s"),
    (1.24, "1.2 s"),
    (42, "42 s"),
    (59.6, "1 min"),
    (180, "3 min"),
    (185, "3 min 5 s"),
    (1200, "20 min"),
    (3900, "1 h 5 min"),
    (None, ""),
])
def test_durations_read_with_their_unit(seconds, shown):
    assert duration_from_seconds(seconds) == shown


def test_milliseconds_read_like_seconds():
    assert (duration_from_ms(140.0), duration_from_ms(2300.0), duration_from_ms(None)) == ("140 ms", "2.3 s", "")
