"""The leaderboard: Elo and counts from the votes, speed and price from the ledger rows of the answers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.tests.factories import user_make
from arena.selectors import leaderboard, ledger_by_model
from arena.services import battle_vote
from arena.tests.factories import QWEN, SMOL, battle_answered
from inference.services import usage_record_create


def _ledger(request_id: str, spec: str, *, user, ttft_ms: float, duration_ms: float, completion_tokens: int,
            outcome: str = "ok") -> None:
    usage_record_create(request_id=request_id, user_id=user.pk, api_key_id=None, spec_name=spec, route_alias="",
                        task="chat", prompt_tokens=100, completion_tokens=completion_tokens, ttft_ms=ttft_ms,
                        duration_ms=duration_ms, outcome=outcome)


@pytest.mark.django_db
def test_the_board_puts_votes_beside_the_ledgers_speed_and_cost(bundled_models):
    user = user_make()
    battle_answered(user=user, vote="a", request_ids=("chatcmpl-one", "chatcmpl-two"))
    battle_answered(user=user, model_a=SMOL, model_b=QWEN, vote="tie", request_ids=("chatcmpl-three", "chatcmpl-four"))
    # Qwen's answers: TTFT 100 and 300 ms (median 200); 11 tokens in 1 s after the first (10 tokens/s) and
    # 21 in 1 s (20 tokens/s): median 15.
    _ledger("chatcmpl-one", QWEN, user=user, ttft_ms=100, duration_ms=1100, completion_tokens=11)
    _ledger("chatcmpl-four", QWEN, user=user, ttft_ms=300, duration_ms=1300, completion_tokens=21)
    # SmolLM2's first answer failed once and its retry ("-1") answered; a request's cost is both attempts'.
    _ledger("chatcmpl-two", SMOL, user=user, ttft_ms=None, duration_ms=50, completion_tokens=0, outcome="error")
    _ledger("chatcmpl-two-1", SMOL, user=user, ttft_ms=80, duration_ms=580, completion_tokens=51)
    _ledger("chatcmpl-three", SMOL, user=user, ttft_ms=120, duration_ms=620, completion_tokens=51)
    _ledger("chatcmpl-unrelated", SMOL, user=user, ttft_ms=9000, duration_ms=9900, completion_tokens=2)  # a chat turn

    rows = {row.model: row for row in leaderboard()}

    qwen, smol = rows[QWEN], rows[SMOL]
    # Votes: Qwen beat SmolLM2 (1016 / 984), then a tie at 1016 vs 984
    # (Qwen expected 0.5460) moves 32 × (0.5 − 0.5460) = −1.47.
    assert (qwen.rank, qwen.wins, qwen.losses, qwen.ties, qwen.votes) == (1, 1, 0, 1, 2)
    assert (smol.rank, smol.wins, smol.losses, smol.ties) == (2, 0, 1, 1)
    assert qwen.rating == pytest.approx(1014.53, abs=0.01) and smol.rating == pytest.approx(985.47, abs=0.01)
    assert qwen.ci_low <= qwen.rating <= qwen.ci_high
    assert (qwen.answers, qwen.median_ttft_ms, qwen.median_tokens_per_s) == (2, 200, 15)
    assert (smol.answers, smol.median_ttft_ms, smol.median_tokens_per_s) == (2, 100, 100)
    # Prices: Qwen $0.0002 in / $0.0004 out per 1k; SmolLM2 $0.0001 / $0.0002. Qwen: 200 prompt tokens and
    # 32 completion tokens over 2 requests: (0.00004 + 0.0000128) / 2 × 1000 = $0.0264 per 1k requests.
    assert qwen.cost_per_1k_requests == Decimal("0.0264")
    # SmolLM2: 300 prompt tokens and 102 completion tokens over 2 requests: (0.00003 + 0.0000204) / 2 × 1000.
    assert smol.cost_per_1k_requests == Decimal("0.0252")
    assert set(ledger_by_model()) == {QWEN, SMOL}


@pytest.mark.django_db(transaction=True)
def test_the_board_is_kept_until_the_next_vote(bundled_models):
    user = user_make()
    battle_answered(user=user, vote="a")
    pending = battle_answered(user=user)

    first = leaderboard()
    assert leaderboard() is first  # the bootstrap is not rerun per page view
    battle_vote(battle=pending, choice="b")
    after = leaderboard()

    assert after is not first
    # Qwen 1016 loses to SmolLM2 984: 32 × (0 − 0.546) = −17.47, so SmolLM2 (1001.47) now leads.
    assert [(row.model, row.wins, row.losses) for row in after] == [(SMOL, 1, 1), (QWEN, 1, 1)]
