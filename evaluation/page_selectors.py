"""Reads the evaluation page needs beyond evaluation.selectors: the models a user may pick, the per-skill
table across models (with intervals), and the figures the scatter plots. Scoped like the selectors they wrap."""

from __future__ import annotations

from evaluation.models import EvalItem, EvalRun
from evaluation.s7 import SKILLS, skill_info


def model_choices_for(*, user) -> list[dict[str, object]]:
    """The chat models and routes the user may use, as the chat's picker describes them (evalrun_start checks
    again: a choice made stale by a plan change is refused there, with its message)."""
    from inference.selectors import chat_model_choices
    from inference.services import Caller

    return [choice for choice in chat_model_choices(caller=Caller(user=user)) if choice["allowed"]]


def item_teams_of(*, user) -> list:
    """Teams whose shared item set the user may add to and run: every team they belong to but their personal
    one (its items are their personal set already)."""
    from accounts.selectors import teams_of_user

    return list(teams_of_user(user=user).filter(is_personal=False).order_by("name", "id"))


def skill_matrix(*, figures: list[dict[str, object]]) -> list[dict[str, object]]:
    """Skills × models: per skill, one cell per model of `figures` (models_latest_figures, same order) with its
    passed of n, score and 95% interval, read from the run the figures came from."""
    runs = {run.pk: run for run in EvalRun.objects.filter(pk__in=[row["run_id"] for row in figures]).order_by("id")}
    rows = []
    for skill in SKILLS:
        cells = []
        for row in figures:
            run = runs.get(row["run_id"])
            cells.append((run.scores or {}).get(skill) if run is not None else None)
        rows.append({"skill": skill, "title": skill_info(skill)["title"], "cells": cells})
    return rows


def scatter_points(*, figures: list[dict[str, object]]) -> list[dict[str, object]]:
    """What the chart draws, per model: quality (score and its interval, 0–100), speed (tokens/s on the axis,
    p50 TTFT in the tooltip) and cost per 1k requests (the point's size). Plain numbers for json_script."""
    def number(value) -> float | None:
        return None if value is None else round(float(value), 6)

    points = []
    for row in figures:
        points.append({
            "model": row["model"], "run_id": row["run_id"],
            "score": number(row["score"] * 100) if row["score"] is not None else None,
            "ci_low": number(row["ci_low"] * 100) if row["ci_low"] is not None else None,
            "ci_high": number(row["ci_high"] * 100) if row["ci_high"] is not None else None,
            "tokens_per_s": number(row["tokens_per_s"]), "ttft_p50_ms": number(row["ttft_p50_ms"]),
            "cost_per_1k": number(row["cost_per_1k_requests"]),
        })
    return points


def evalitems_count_by_set(*, items: list[EvalItem]) -> dict[str, int]:
    """How many items each set holds ("personal", or a team id as text): the run-your-set form's labels."""
    counts: dict[str, int] = {}
    for item in items:
        key = "personal" if item.owner_id else str(item.team_id)
        counts[key] = counts.get(key, 0) + 1
    return counts
