"""Filters for the evaluation pages: a 0–1 score as a percentage, an interval, a speed, a cost."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value: float | None) -> str:
    """0.5714 → "57%"; "–" when there is no figure."""
    if value is None or value == "":
        return "–"
    return f"{float(value) * 100:.0f}%"


@register.filter
def interval(figures: dict | None) -> str:
    """A {ci_low, ci_high} pair (0–1) as "45–90%"; "–" without one."""
    if not figures or figures.get("ci_low") is None or figures.get("ci_high") is None:
        return "–"
    return f"{figures['ci_low'] * 100:.0f}–{figures['ci_high'] * 100:.0f}%"


@register.filter
def figure(value: float | None, digits: int = 1) -> str:
    """A measured figure with `digits` decimals; "–" when it was not measured."""
    if value is None or value == "":
        return "–"
    return f"{float(value):,.{int(digits)}f}"


@register.filter
def skill_title(skill: str) -> str:
    from evaluation.s7 import SKILLS, skill_info

    return skill_info(skill)["title"] if skill in SKILLS else (skill or "–")


@register.filter
def item_prompt(item) -> str:
    """A user's item's question, prompt, text or task (whichever its skill has)."""
    from evaluation.forms import PROMPT_FIELD

    return str((item.spec or {}).get(PROMPT_FIELD.get(item.skill, ""), ""))
