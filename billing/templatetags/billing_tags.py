from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def cents(value: int | None) -> str:
    """1999 -> "$19.99"."""
    if value is None:
        return ""
    return f"${value / 100:,.2f}"


@register.filter
def duration(seconds: int | None) -> str:
    """93784 -> "1 day 2 hours 3 minutes" (what the countdown script also writes)."""
    seconds = int(seconds or 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    for amount, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")):
        if amount:
            parts.append(f"{amount} {unit}{'' if amount == 1 else 's'}")
    return " ".join(parts) or "less than a minute"
