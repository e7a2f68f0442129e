"""Battles: two different models the user may use, one vote each, and the state a run leaves."""

from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from arena.models import Battle, BattleAnswer
from arena.selectors import arena_models_for
from arena.services import (
    battle_abandon,
    battle_answer_finish,
    battle_create,
    battle_start,
    battle_vote,
)
from arena.tests.factories import QWEN, SMOL, battle_answered, battle_make
from common.errors import ApplicationError
from inference.services import modelspec_register

pytestmark = pytest.mark.django_db


def _pro_only_model() -> None:
    """A chat model only the Pro plan includes (registered as the 1.5B is: access_plans=['pro'])."""
    modelspec_register(name="pro-only-chat", defaults={
        "task": "chat", "backend": "ctranslate2", "source": "/nonexistent/pro-only", "params": {}},
        access_plans=["pro"])


def test_a_battle_is_two_different_models_the_user_may_use_in_random_order(bundled_models):
    _pro_only_model()
    user = user_make()

    models = arena_models_for(user=user)
    pairs = {(b.model_a, b.model_b) for b in (battle_create(user=user, prompt="Hi", models=models)
                                               for _ in range(30))}

    assert models == sorted([QWEN, SMOL])  # never the Pro model for a free user
    assert pairs == {(QWEN, SMOL), (SMOL, QWEN)}  # both orders come up (1 in 2^29 chance they don't)
    battle = Battle.objects.order_by("id").first()
    assert [(a.side, a.model_name, a.status) for a in battle.answers.order_by("side")] == [
        ("a", battle.model_a, "pending"), ("b", battle.model_b, "pending")]


def test_staff_may_compare_the_pro_model(bundled_models):
    _pro_only_model()
    assert "pro-only-chat" in arena_models_for(user=user_make(is_staff=True))


@pytest.mark.parametrize(("models", "says"), [([QWEN], f"only `{QWEN}` is available"), ([], "none is available")])
def test_one_model_is_not_a_comparison(models, says):
    with pytest.raises(ApplicationError) as error:
        battle_create(user=user_make(), prompt="Hi", models=models)
    assert error.value.status == 409 and says in error.value.message
    assert not Battle.objects.exists()


@pytest.mark.parametrize(("prompt", "max_tokens", "says"), [
    ("   ", 64, "Write a prompt"), ("x" * 8001, 64, "at most 8,000"), ("a\x00b", 64, "U+0000"),
    ("Hi", 2000, "between 16 and 1024")])
def test_bad_prompts_and_lengths_are_refused_with_the_reason(prompt, max_tokens, says):
    with pytest.raises(ApplicationError) as error:
        battle_create(user=user_make(), prompt=prompt, models=[QWEN, SMOL], max_tokens=max_tokens)
    assert error.value.status == 400 and says in error.value.message


def test_a_battle_starts_once():
    battle = battle_make(user=user_make())
    assert battle_start(battle=battle) is True
    assert battle_start(battle=Battle.objects.get(pk=battle.pk)) is False


def test_the_battle_is_answered_once_both_sides_are_done_and_failed_if_one_is_not(bundled_models):
    user = user_make()
    answered = battle_answered(user=user)
    assert answered.status == "answered"
    assert answered.answers.get(side="a").cost > 0  # priced by the ledger's own function

    battle = battle_make(user=user)
    battle_start(battle=battle)
    battle_answer_finish(battle_id=battle.pk, side="a", status=BattleAnswer.Status.DONE, text="Blue.")
    assert Battle.objects.get(pk=battle.pk).status == "running"
    battle_abandon(battle_id=battle.pk)  # the page left while B was still answering
    battle.refresh_from_db()
    assert battle.status == "failed" and "Model B stopped" in battle.error
    assert battle.answers.get(side="a").text == "Blue."


def test_one_vote_per_battle():
    battle = battle_answered(user=user_make())

    voted = battle_vote(battle=battle, choice="tie")
    with pytest.raises(ApplicationError) as error:
        battle_vote(battle=battle, choice="a")

    assert voted.vote == "tie" and voted.voted_at is not None
    assert error.value.status == 409 and error.value.code == "already_voted"
    assert "already voted" in error.value.message and Battle.objects.get(pk=battle.pk).vote == "tie"


def test_a_wrong_choice_names_the_allowed_ones_and_an_unfinished_battle_takes_no_vote():
    user = user_make()
    with pytest.raises(ApplicationError) as error:
        battle_vote(battle=battle_answered(user=user), choice="c")
    assert error.value.status == 400 and "a, b, tie, both_bad" in error.value.message
    assert error.value.extra["allowed"] == ["a", "b", "tie", "both_bad"]

    with pytest.raises(ApplicationError) as error:
        battle_vote(battle=battle_make(user=user), choice="a")
    assert error.value.status == 409 and error.value.code == "not_answered"
