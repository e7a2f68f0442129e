"""Finished runs for the page's tests, without a model: the rows the task would have written, then the engine's
own evalrun_finish computes the figures (scores, intervals, speed, cost)."""

from __future__ import annotations

from decimal import Decimal

from evaluation.models import EvalResult, EvalRun
from evaluation.s7 import SKILLS, s7_items
from evaluation.services import evalrun_finish


def finished_run_make(*, user, model: str, passes: dict[str, list[bool]] | None = None, kind: str = "full",
                      ttft_ms: float = 150.0, tokens_per_s: float = 20.0, cost: str = "0.0005") -> EvalRun:
    """A done run of `model`: per skill, which of its first items passed (all seven skills, 2 items each, by
    default). Written as running (so no task is queued) and finished by evalrun_finish."""
    passes = passes or {skill: [True, False] for skill in SKILLS}
    items = []
    for skill, outcomes in passes.items():
        items += list(zip(s7_items(skills=[skill], limit=len(outcomes)), outcomes, strict=True))
    run = EvalRun.objects.create(
        user=user, model=model, kind=kind, status=EvalRun.Status.RUNNING, skills=[s for s in SKILLS if s in passes],
        item_keys=[item.key for item, _ in items], items_total=len(items))
    for position, (item, passed) in enumerate(items):
        EvalResult.objects.create(
            run=run, position=position, item_key=item.key, skill=item.skill, prompt=item.prompt,
            answer=f"An answer to {item.key}", passed=passed, detail="Right." if passed else "Wrong: no match.",
            ttft_ms=ttft_ms + position, tokens_per_s=tokens_per_s, completion_tokens=21, cost=Decimal(cost),
            spec=model)
    return evalrun_finish(run=run)
