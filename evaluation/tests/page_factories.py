"""Finished runs for the page's tests, without a model: the rows the task would have written, then the engine's
own evalrun_finish computes the figures (scores, intervals, speed, cost)."""

from __future__ import annotations

from decimal import Decimal

from evaluation.models import EvalResult, EvalRun
from evaluation.s7 import SKILLS, s7_items
from evaluation.services import evalrun_finish


def finished_run_make(*, user, model: str, passes: dict[str, list[bool]] | None = None, kind: str = "full",
                      ttft_ms: float = 150.0, tokens_per_s: float = 20.0, cost: str = "0.0005") -> EvalRun:
    """A done run of `model` over every item of the skills in `passes` (all seven by default, which makes it a
    full S-7 run, the kind the chart plots): each skill's items pass or fail in the pattern its list gives,
    repeated ([True, False]: every other one). Written as running (so no task is queued) and finished by
    evalrun_finish. A challenge takes only as many items per skill as the pattern has."""
    passes = passes or {skill: [True, False] for skill in SKILLS}
    items = []
    for skill, outcomes in passes.items():
        chosen = s7_items(skills=[skill], limit=len(outcomes) if kind == "challenge" else None)
        items += [(item, outcomes[index % len(outcomes)]) for index, item in enumerate(chosen)]
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
