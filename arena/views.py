"""The arena's pages: start a comparison, watch both answers stream, vote, and the leaderboard.

The vote is a plain form (it works without JavaScript); a client that asks for JSON gets JSON, errors
included. Streaming needs JavaScript: static/arena/arena.js reads the battle's stream endpoint."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from arena.comparisons import Comparison, comparison_begin
from arena.forms import ANSWER_LENGTHS, BattleCreateForm
from arena.models import Battle
from arena.ratings import BOOTSTRAP_ROUNDS, INITIAL_RATING, K_FACTOR
from arena.selectors import arena_models_for, battle_get, battles_of_user, leaderboard
from arena.services import CHOICES, DEFAULT_MAX_TOKENS, battle_create, battle_vote
from common.errors import ApplicationError
from common.forms import form_error_message


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _battle_or_404(request: HttpRequest, battle_id: int) -> Battle:
    battle = battle_get(user=request.user, battle_id=battle_id)
    if battle is None:
        raise Http404("No such comparison.")
    return battle


def _error_json(exc: ApplicationError) -> JsonResponse:
    return JsonResponse({"error": {"code": exc.code, "message": exc.message, **exc.extra}}, status=exc.status)


@login_required
def arena_home(request: HttpRequest) -> HttpResponse:
    """The prompt form (prefilled from ?prompt=, as chat's Compare link sends it); POST starts a battle."""
    error, status = None, 200
    prompt = request.GET.get("prompt", "")[:8000]
    max_tokens = DEFAULT_MAX_TOKENS
    models = arena_models_for(user=request.user)
    if request.method == "POST":
        form = BattleCreateForm(request.POST)
        prompt = request.POST.get("prompt", "")[:8000]
        try:
            if not form.is_valid():
                raise ApplicationError(form_error_message(form))
            max_tokens = form.cleaned_data["max_tokens"] or DEFAULT_MAX_TOKENS
            battle = battle_create(user=request.user, prompt=form.cleaned_data["prompt"], models=models,
                                   max_tokens=max_tokens)
        except ApplicationError as exc:
            error, status = exc.message, exc.status
        else:
            return redirect("arena:battle", battle_id=battle.pk)
    return render(request, "arena/home.html", {
        "prompt": prompt, "error": error, "model_count": len(models), "answer_lengths": ANSWER_LENGTHS,
        "max_tokens": max_tokens, "battles": battles_of_user(user=request.user).prefetch_related("answers")[:20],
    }, status=status)


@login_required
@require_GET
def battle_page(request: HttpRequest, battle_id: int) -> HttpResponse:
    battle = _battle_or_404(request, battle_id)
    return render(request, "arena/battle.html", _battle_context(battle))


def _battle_context(battle: Battle, error: str | None = None) -> dict:
    answers = {answer.side: answer for answer in battle.answers.all()}
    return {"battle": battle, "answer_a": answers.get("a"), "answer_b": answers.get("b"), "error": error,
            "choices": Battle.Choice.choices, "revealed": bool(battle.vote)}


@login_required
@require_POST
def battle_stream(request: HttpRequest, battle_id: int) -> HttpResponse:
    """Run a new battle: both answers as one Server-Sent Events stream (arena.comparisons has the frames)."""
    battle = _battle_or_404(request, battle_id)
    try:
        comparison = comparison_begin(battle=battle, user=request.user)
    except ApplicationError as exc:
        return _error_json(exc)

    async def events():
        async for frame in comparison.frames():
            yield f"event: {frame['type']}\ndata: {json.dumps(frame)}\n\n"

    response = _ComparisonStream(comparison, events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class _ComparisonStream(StreamingHttpResponse):
    """Closing the stream (at its end, or when the page left) settles both requests' reservations and
    marks what did not finish as interrupted."""

    def __init__(self, comparison: Comparison, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.comparison = comparison

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.comparison.close()


@login_required
@require_POST
def battle_vote_view(request: HttpRequest, battle_id: int) -> HttpResponse:
    """A, B, tie or both bad, once; then the models' names are shown."""
    battle = _battle_or_404(request, battle_id)
    choice = request.POST.get("choice", "")
    if _wants_json(request) and request.content_type == "application/json":
        try:
            choice = json.loads(request.body or b"{}").get("choice", "")
        except (ValueError, AttributeError):
            choice = ""
    try:
        battle = battle_vote(battle=battle, choice=choice)
    except ApplicationError as exc:
        if _wants_json(request):
            return _error_json(exc)
        return render(request, "arena/battle.html", _battle_context(battle, error=exc.message), status=exc.status)
    if _wants_json(request):
        return JsonResponse({"id": battle.pk, "vote": battle.vote, "model_a": battle.model_a,
                             "model_b": battle.model_b})
    return redirect("arena:battle", battle_id=battle.pk)


@login_required
@require_GET
def leaderboard_page(request: HttpRequest) -> HttpResponse:
    return render(request, "arena/leaderboard.html", {
        "rows": leaderboard(), "k_factor": K_FACTOR, "initial_rating": int(INITIAL_RATING),
        "rounds": BOOTSTRAP_ROUNDS, "choices": CHOICES})
