"""Reads for S-7, scoped to the caller: a run and its items are its starter's (and staff's); the figures per
model, taken from full S-7 runs, are the deployment's and shown to everyone (no prompt or answer in them)."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Q, QuerySet

from common.plans import plan_of
from evaluation.models import EvalItem, EvalResult, EvalRun
from evaluation.s7 import SKILLS, s7_items, skill_info

FREE_PLAN = "free"  # billing.models.Plan.FREE_SLUG: the plan that gets the challenge only


def evalrun_may_run_full(*, user) -> bool:
    """Who may start a full run (S-7, or a set of their own items): staff always; otherwise a user on a paid
    plan (Pro). With plans off (no provider), staff only. Everyone may take the 7-item challenge."""
    if getattr(user, "is_staff", False):
        return True
    plan = plan_of(user)
    return plan is not None and plan.plan != FREE_PLAN


def evalruns_visible(*, user) -> QuerySet[EvalRun]:
    """Runs the user may open: their own; staff every run."""
    runs = EvalRun.objects.select_related("user", "team")
    if not getattr(user, "is_staff", False):
        runs = runs.filter(user=user)
    return runs.order_by("-created_at", "-id")


def evalrun_get_for(*, user, run_id: int) -> EvalRun | None:
    """One run, or None when it is not the user's to see (another's run is indistinguishable from none)."""
    return evalruns_visible(user=user).filter(pk=run_id).first()


def evalruns_of_model(*, user, model: str) -> QuerySet[EvalRun]:
    """The user's visible runs of one model or route, newest first, with their scores."""
    return evalruns_visible(user=user).filter(model=model)


def evalresults_of_run(*, run: EvalRun, skill: str | None = None) -> QuerySet[EvalResult]:
    """A run's items in the order they were asked (optionally one skill's). The caller checked the run is theirs."""
    results = EvalResult.objects.filter(run=run)
    if skill:
        results = results.filter(skill=skill)
    return results.order_by("position", "id")


def skill_table(*, run: EvalRun) -> list[dict[str, object]]:
    """One row per skill of the run: title, what it checks, passed of n, score and its 95% Wilson interval."""
    rows = []
    for skill in SKILLS:
        figures = (run.scores or {}).get(skill)
        if figures is None:
            continue
        info = skill_info(skill)
        rows.append({"skill": skill, "title": info["title"], "about": info["about"], **figures})
    return rows


def _measured() -> QuerySet[EvalRun]:
    """Finished runs of every S-7 item (no skill left out, no limit): the only scores that compare across models."""
    return (EvalRun.objects.filter(status=EvalRun.Status.DONE, kind=EvalRun.Kind.FULL, source=EvalRun.Source.S7,
                                   skills=list(SKILLS), items_total=len(s7_items()))
            .exclude(finished_at__isnull=True))


def models_latest_figures() -> list[dict[str, object]]:
    """Per model or route, its latest full S-7 run: quality (score with its interval, per skill, the judge's if
    any, labelled), speed (p50/p95 TTFT, tokens/s), peak worker memory and cost per 1k requests (the run's
    ledger cost over its items, times 1000). What the quality-vs-speed scatter plots, best score first."""
    latest = _measured().order_by("model", "-finished_at", "-id").distinct("model")
    rows = []
    for run in latest:
        requests = run.items_done or run.items_total
        per_1k = (run.cost / requests * 1000) if requests else Decimal(0)
        rows.append({
            "model": run.model, "run_id": run.pk, "finished_at": run.finished_at, "score": run.score,
            "ci_low": run.score_ci_low, "ci_high": run.score_ci_high,
            "scores": {skill: figures["score"] for skill, figures in (run.scores or {}).items()},
            "judge": run.judge_score, "judge_model": run.judge_model,
            "ttft_p50_ms": run.ttft_p50_ms, "ttft_p95_ms": run.ttft_p95_ms, "tokens_per_s": run.tokens_per_s,
            "peak_memory_mb": run.peak_memory_mb, "cost": run.cost,
            "cost_per_1k_requests": per_1k.quantize(Decimal("0.000001")), "answered_by": run.answered_by,
        })
    return sorted(rows, key=lambda row: (-(row["score"] or 0), row["model"]))


def evalitems_of_user(*, user) -> QuerySet[EvalItem]:
    """The user's personal items and those of every team they belong to."""
    from accounts.selectors import team_ids_of_user

    return (EvalItem.objects.filter(Q(owner=user) | Q(team_id__in=team_ids_of_user(user=user)))
            .select_related("team", "created_by").order_by("skill", "id"))


def evalitem_get_for(*, user, item_id: int) -> EvalItem | None:
    return evalitems_of_user(user=user).filter(pk=item_id).first()


def evalruns_in_progress(*, user) -> QuerySet[EvalRun]:
    """The user's runs still queued or running (a page resumes their progress bars from these)."""
    return evalruns_visible(user=user).filter(user=user, status__in=[EvalRun.Status.QUEUED, EvalRun.Status.RUNNING])


def s7_skills() -> list[dict[str, object]]:
    """S-7's seven skills in order: title, what is checked, items and the reply budget (the page's legend)."""
    return [skill_info(skill) for skill in SKILLS]
