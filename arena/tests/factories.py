from __future__ import annotations

from accounts.models import User
from arena.models import Battle, BattleAnswer
from arena.services import battle_answer_finish, battle_answer_streaming, battle_start, battle_vote

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"


def battle_make(*, user: User, model_a: str = QWEN, model_b: str = SMOL, prompt: str = "Name a colour.") -> Battle:
    """A new battle with the models on the sides given (battle_create picks them at random)."""
    battle = Battle.objects.create(user=user, prompt=prompt, max_tokens=64, model_a=model_a, model_b=model_b)
    BattleAnswer.objects.bulk_create([BattleAnswer(battle=battle, side="a", model_name=model_a),
                                      BattleAnswer(battle=battle, side="b", model_name=model_b)])
    return battle


def battle_answered(*, user: User, model_a: str = QWEN, model_b: str = SMOL, vote: str | None = None,
                    request_ids: tuple[str, str] | None = None) -> Battle:
    """A battle both of whose answers finished (as a run would leave it), voted on if `vote` is given."""
    battle = battle_make(user=user, model_a=model_a, model_b=model_b)
    battle_start(battle=battle)
    for index, side in enumerate("ab"):
        if request_ids:
            battle_answer_streaming(battle_id=battle.pk, side=side, request_id=request_ids[index])
        battle_answer_finish(battle_id=battle.pk, side=side, status=BattleAnswer.Status.DONE, text=f"Answer {side}",
                             usage={"prompt_tokens": 20, "completion_tokens": 10}, ttft_ms=100.0, tokens_per_s=20.0,
                             duration_ms=600.0, finish_reason="stop")
    battle.refresh_from_db()
    if vote:
        battle = battle_vote(battle=battle, choice=vote)
    return battle
