"""How amounts and durations read to people (admin lists, pages): money with its currency, time with its unit."""

from __future__ import annotations

from decimal import Decimal

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "inr": "₹", "cad": "$", "aud": "$"}
# Stripe's currencies whose smallest unit is the whole unit (amounts are not in cents).
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())


def money_from_cents(cents: int | None, currency: str = "usd") -> str:
    """199900, "usd" -> "$1,999.00 USD". Amounts are in the currency's smallest unit, as Stripe stores them."""
    if cents is None:
        return ""
    code = (currency or "usd").lower()
    places = 0 if code in ZERO_DECIMAL else 2
    amount = Decimal(cents) / (10**places)
    return _with_currency(f"{abs(amount):,.{places}f}", code, negative=amount < 0)


def money_from_amount(amount: Decimal | float | None, currency: str = "usd") -> str:
    """Decimal("0.000123") -> "$0.000123 USD": a per-request cost keeps its significant digits below a dollar."""
    if amount is None:
        return ""
    amount = Decimal(str(amount))
    code = (currency or "usd").lower()
    if amount == 0 or abs(amount) >= 1:
        text = f"{abs(amount):,.2f}"
    else:
        text = f"{abs(amount):.6f}".rstrip("0")
        whole, _, fraction = text.partition(".")
        text = f"{whole}.{fraction.ljust(2, '0')}"
    return _with_currency(text, code, negative=amount < 0)


def _with_currency(number: str, code: str, *, negative: bool) -> str:
    sign = "-" if negative else ""
    symbol = CURRENCY_SYMBOLS.get(code, "")
    return f"{sign}{symbol}{number} {code.upper()}"


def duration_from_seconds(seconds: float | None) -> str:
    """0.35 -> "350 ms", 1.24 -> "1.2 s", 42 -> "42 s", 185 -> "3 min 5 s", 3900 -> "1 h 5 min"."""
    if seconds is None:
        return ""
    seconds = max(float(seconds), 0.0)
    # Each step compares the rounded figure, so 0.9996 s reads "1.0 s", not "1000 ms".
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f} ms"
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    if round(seconds) < 60:
        return f"{seconds:.0f} s"
    whole = round(seconds)
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" if rest == 0 or minutes >= 10 else f"{minutes} min {rest} s"
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes} min"


def duration_from_ms(milliseconds: float | None) -> str:
    return "" if milliseconds is None else duration_from_seconds(milliseconds / 1000)
