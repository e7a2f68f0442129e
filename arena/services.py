"""Writes for the arena: a battle, its two answers, and its one vote. State changes are guarded UPDATEs:
two tabs may stream or vote on the same battle at once, and only the first gets through."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from arena.models import Battle, BattleAnswer
from common.errors import ApplicationError
from common.text import control_character_find
from inference.selectors import spec_get
from inference.services import usage_cost

MAX_PROMPT_CHARS = 8000
MIN_MAX_TOKENS, MAX_MAX_TOKENS = 16, 1024
DEFAULT_MAX_TOKENS = 256
CHOICES = tuple(Battle.Choice.values)


def battle_models_pick(*, names: list[str]) -> tuple[str, str]:
    """Two different models, in random order (which one is "A" is random too)."""
    unique = sorted(set(names))
    if len(unique) < 2:
        raise ApplicationError(
            "A comparison needs two chat models you may use, and " + (
                f"only `{unique[0]}` is available to you" if unique else "none is available to you")
            + " on this server. Ask its operator to install another, or upgrade your plan.",
            code="arena_needs_two_models", status=409)
    first, second = secrets.SystemRandom().sample(unique, 2)
    return first, second


def prompt_check(prompt: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApplicationError("Write a prompt for the two models to answer.", code="empty_prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ApplicationError(f"The prompt is {len(prompt):,} characters; the arena takes at most "
                               f"{MAX_PROMPT_CHARS:,}. Shorten it.", code="prompt_too_long")
    if (char := control_character_find(prompt)) is not None:
        raise ApplicationError(f"The prompt contains a control character (U+{ord(char):04X}); remove it and "
                               "try again.", code="invalid_prompt")
    return prompt.strip()


@transaction.atomic
def battle_create(*, user: User, prompt: str, models: list[str], max_tokens: int = DEFAULT_MAX_TOKENS) -> Battle:
    """A new battle between two of `models` (those the user may use: arena.selectors.arena_models_for)."""
    prompt = prompt_check(prompt)
    if not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
        raise ApplicationError(f"The answer length must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS} tokens.",
                               code="invalid_max_tokens")
    model_a, model_b = battle_models_pick(names=models)
    battle = Battle.objects.create(user=user, prompt=prompt, max_tokens=max_tokens, model_a=model_a, model_b=model_b)
    BattleAnswer.objects.bulk_create([BattleAnswer(battle=battle, side="a", model_name=model_a),
                                      BattleAnswer(battle=battle, side="b", model_name=model_b)])
    return battle


def battle_start(*, battle: Battle) -> bool:
    """Claim a new battle for streaming; False if it was started before (a reload, a second tab)."""
    claimed = Battle.objects.filter(pk=battle.pk, status=Battle.Status.NEW).update(
        status=Battle.Status.RUNNING, updated_at=timezone.now())
    if claimed:
        battle.status = Battle.Status.RUNNING
    return bool(claimed)


def battle_answer_streaming(*, battle_id: int, side: str, request_id: str) -> None:
    BattleAnswer.objects.filter(battle_id=battle_id, side=side).update(status=BattleAnswer.Status.STREAMING,
                                                                       request_id=request_id)


@transaction.atomic
def battle_answer_finish(*, battle_id: int, side: str, status: str, text: str = "", error: str = "",
                         finish_reason: str = "", usage: dict | None = None, ttft_ms: float | None = None,
                         tokens_per_s: float | None = None, duration_ms: float | None = None) -> Battle:
    """Store one side's final answer, and settle the battle once both sides have one: answered if both
    are done, failed otherwise. The battle row is locked so the two sides' last writes don't race."""
    battle = Battle.objects.select_for_update().get(pk=battle_id)
    answer = BattleAnswer.objects.get(battle=battle, side=side)
    usage = usage or {}
    spec = spec_get(name=answer.model_name)
    answer.status, answer.text, answer.error, answer.finish_reason = status, text, error[:2000], finish_reason[:20]
    answer.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    answer.completion_tokens = int(usage.get("completion_tokens") or 0)
    answer.ttft_ms, answer.tokens_per_s, answer.duration_ms = ttft_ms, tokens_per_s, duration_ms
    # The ledger's own price function, so the battle's cost is the ledger row's.
    answer.cost = usage_cost(spec=spec, prompt_tokens=answer.prompt_tokens,
                             completion_tokens=answer.completion_tokens)
    answer.finished_at = timezone.now()
    answer.save()
    _battle_settle(battle)
    return battle


def _battle_settle(battle: Battle) -> None:
    answers = list(BattleAnswer.objects.filter(battle=battle).order_by("side"))
    if not all(answer.finished for answer in answers) or battle.status not in (Battle.Status.RUNNING,
                                                                             Battle.Status.FAILED):
        return
    if all(answer.status == BattleAnswer.Status.DONE for answer in answers):
        battle.status, battle.error = Battle.Status.ANSWERED, ""
    else:
        battle.status = Battle.Status.FAILED
        broken = next(a for a in answers if a.status != BattleAnswer.Status.DONE)
        label = broken.get_side_display()
        battle.error = (f"{label} stopped before its answer was complete, so this comparison can't be voted on."
                        if broken.status == BattleAnswer.Status.INTERRUPTED
                        else f"{label} could not answer, so this comparison can't be voted on.")
    battle.save(update_fields=["status", "error", "updated_at"])


@transaction.atomic
def battle_fail(*, battle: Battle, reason: str) -> None:
    """The comparison could not start (a limit, a model the plan lacks): nothing was answered."""
    Battle.objects.filter(pk=battle.pk).update(status=Battle.Status.FAILED, error=reason[:2000],
                                               updated_at=timezone.now())
    BattleAnswer.objects.filter(battle=battle, status__in=[BattleAnswer.Status.PENDING,
                                                           BattleAnswer.Status.STREAMING]).update(
        status=BattleAnswer.Status.FAILED, finished_at=timezone.now())


@transaction.atomic
def battle_abandon(*, battle_id: int) -> None:
    """The page left before both answers finished: what is still unfinished is interrupted (an answer that
    finishes later overwrites its own row)."""
    battle = Battle.objects.select_for_update().get(pk=battle_id)
    changed = BattleAnswer.objects.filter(battle=battle, status__in=[BattleAnswer.Status.PENDING,
                                                                      BattleAnswer.Status.STREAMING]).update(
        status=BattleAnswer.Status.INTERRUPTED, finished_at=timezone.now())
    if changed:
        _battle_settle(battle)


def battle_vote(*, battle: Battle, choice: str) -> Battle:
    """The user's one vote on an answered battle; 400 for a choice that isn't one, 409 for a second vote."""
    if choice not in CHOICES:
        raise ApplicationError(f"`choice` must be one of {', '.join(CHOICES)} (A better, B better, a tie, or both "
                               f"bad); got {str(choice)[:40]!r}.", code="invalid_choice", status=400,
                               extra={"allowed": list(CHOICES)})
    with transaction.atomic():
        voted = Battle.objects.filter(pk=battle.pk, status=Battle.Status.ANSWERED, vote="").update(
            vote=choice, voted_at=timezone.now(), updated_at=timezone.now())
        if voted:
            from arena.selectors import LEADERBOARD

            LEADERBOARD.changed()
    battle.refresh_from_db()
    if not voted:
        if battle.vote:
            raise ApplicationError(
                f"You already voted on this comparison ({battle.get_vote_display().lower()}); each comparison "
                "takes one vote. Start a new comparison to vote again.", code="already_voted", status=409)
        raise ApplicationError(
            "This comparison can't be voted on: " + (battle.error or "both answers must finish first."),
            code="not_answered", status=409)
    return battle
