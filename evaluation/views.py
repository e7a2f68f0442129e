"""The S-7 evaluation pages: quality against speed for every model measured here, the per-skill table, starting
runs and the 7-item challenge, a run's items with their grades, and users' own items. Runs report progress on
the user's notifications socket (evaluation.services.PROGRESS_EVENT); static/js/evaluation.js listens there."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from common.errors import ApplicationError
from common.forms import form_error_message
from evaluation.forms import SKILL_CHOICES, ItemForm, ModelForm, RunStartForm, item_error_message
from evaluation.models import EvalRun
from evaluation.page_selectors import (
    evalitems_count_by_set,
    item_teams_of,
    model_choices_for,
    scatter_points,
    skill_matrix,
)
from evaluation.s7 import SKILLS, skill_info
from evaluation.selectors import (
    evalitem_get_for,
    evalitems_of_user,
    evalresults_of_run,
    evalrun_get_for,
    evalrun_may_run_full,
    evalruns_in_progress,
    evalruns_visible,
    models_latest_figures,
    skill_table,
)
from evaluation.services import PROGRESS_EVENT, evalitem_create, evalitem_delete, evalrun_start

RUNS_LISTED = 20


def _run_or_404(request: HttpRequest, run_id: int) -> EvalRun:
    run = evalrun_get_for(user=request.user, run_id=run_id)
    if run is None:  # another user's run looks like none at all
        raise Http404("No such run among yours.")
    return run


def _page(request: HttpRequest, *, errors: dict | None = None, status: int = 200) -> HttpResponse:
    """The evaluation page; `errors` puts a form's error beside that form (keys: challenge, run, set, item)."""
    user = request.user
    figures = models_latest_figures()
    items = list(evalitems_of_user(user=user))
    teams = item_teams_of(user=user)
    counts = evalitems_count_by_set(items=items)
    points = scatter_points(figures=figures)
    costs = [point["cost_per_1k"] for point in points if point["cost_per_1k"] is not None]
    skills = [skill_info(skill) for skill in SKILLS]
    return render(request, "evaluation/index.html", {
        "figures": figures,
        "points": points,
        "cost_range": (min(costs), max(costs)) if costs else None,
        "matrix": skill_matrix(figures=figures),
        "runs": evalruns_visible(user=user)[:RUNS_LISTED],
        "in_progress": list(evalruns_in_progress(user=user)),
        "model_choices": model_choices_for(user=user),
        "skills": skills,
        "s7_total": sum(skill["items"] for skill in skills),
        "skill_choices": SKILL_CHOICES,
        "items": items,
        "teams": teams,
        "item_sets": [("personal", "Your own items", counts.get("personal", 0))]
                     + [(str(team.pk), f"{team.name} (team)", counts.get(str(team.pk), 0)) for team in teams],
        "errors": errors or {},
        "posted": request.POST if request.method == "POST" else {},
        "posted_skills": request.POST.getlist("skills") if request.method == "POST" else [],
        "progress_event": PROGRESS_EVENT,
        "may_run_full": evalrun_may_run_full(user=user),
    }, status=status)


def _error(exc: ApplicationError) -> dict[str, object]:
    return {"message": exc.message, "run_id": exc.extra.get("run_id")}


@login_required
@require_GET
def evaluation_page(request: HttpRequest) -> HttpResponse:
    from onboarding.models import Event
    from onboarding.services import event_record

    event_record(user_id=request.user.pk, name=Event.EVALUATION_VIEWED, request=request)
    return _page(request)


@login_required
@require_POST
def challenge_start(request: HttpRequest) -> HttpResponse:
    """Any signed-in user: the 7-item S-7 (one item per skill) against a model of their choice."""
    form = ModelForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_error_message(form))
        run = evalrun_start(user=request.user, model=form.cleaned_data["model"], kind=EvalRun.Kind.CHALLENGE)
    except ApplicationError as exc:
        return _page(request, errors={"challenge": _error(exc)}, status=exc.status)
    return redirect("evaluation:run", run_id=run.pk)


@login_required
@require_POST
def run_start(request: HttpRequest) -> HttpResponse:
    """A full run (S-7, or the user's own or a team's set) of chosen skills: evalrun_start says who may."""
    form = RunStartForm(request.POST)
    origin = "set" if request.POST.get("item_set") else "run"
    try:
        if not form.is_valid():
            raise ApplicationError(form_error_message(form))
        run = evalrun_start(user=request.user, model=form.cleaned_data["model"],
                            skills=form.cleaned_data["skills"] or None, kind=EvalRun.Kind.FULL,
                            item_set=form.cleaned_data["item_set"], judge_model=form.cleaned_data["judge_model"])
    except ApplicationError as exc:
        return _page(request, errors={origin: _error(exc)}, status=exc.status)
    return redirect("evaluation:run", run_id=run.pk)


@login_required
@require_POST
def item_create(request: HttpRequest) -> HttpResponse:
    form = ItemForm(request.POST)
    try:
        if not form.is_valid():
            raise ApplicationError(form_error_message(form))
        try:
            spec = form.spec()
        except forms.ValidationError as exc:
            raise ApplicationError(" ".join(exc.messages))
        item = evalitem_create(user=request.user, skill=form.cleaned_data["skill"], spec=spec,
                               title=form.cleaned_data["title"], team=form.cleaned_data["team"])
    except ApplicationError as exc:
        message = item_error_message(exc.message, exc.extra.get("param"))
        return _page(request, errors={"item": {"message": message}}, status=exc.status)
    where = f"{item.team.name}'s set" if item.team_id else "your own set"
    messages.success(request, f"Added “{item}” to {where}.")
    return redirect(reverse("evaluation:index") + "#items")


@login_required
@require_POST
def item_delete(request: HttpRequest, item_id: int) -> HttpResponse:
    item = evalitem_get_for(user=request.user, item_id=item_id)
    if item is None:
        raise Http404("No such item among yours.")
    name = str(item)
    try:
        evalitem_delete(user=request.user, item=item)
    except ApplicationError as exc:
        if exc.status == 404:
            raise Http404(exc.message)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Deleted “{name}”. Past runs keep their copy of it.")
    return redirect(reverse("evaluation:index") + "#items")


@login_required
@require_GET
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's items with prompts, answers and grades; its starter's and staff's only (404 for anyone else)."""
    run = _run_or_404(request, run_id)
    return render(request, "evaluation/run.html", {
        "run": run,
        "results": evalresults_of_run(run=run),
        "skill_rows": skill_table(run=run),
        "progress_event": PROGRESS_EVENT,
    })


@login_required
@require_GET
def run_progress(request: HttpRequest, run_id: int) -> JsonResponse:
    """The run's state now: what the page asks for when its socket (re)opens, as events sent while it was
    closed are gone."""
    run = evalrun_get_for(user=request.user, run_id=run_id)
    if run is None:
        return JsonResponse({"error": "No such run among yours."}, status=404)
    return JsonResponse({"run_id": run.pk, "status": run.status, "done": run.items_done, "total": run.items_total,
                         "percent": round(100 * run.progress), "score": run.score, "error": run.error})
