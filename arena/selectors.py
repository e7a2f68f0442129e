"""Reads for the arena: the models a user may compare, their battles, and the leaderboard."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet

from accounts.models import User
from arena.models import Battle
from arena.ratings import BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED, Vote, elo_bootstrap, elo_ratings
from common.versioned import VersionedCache
from inference.selectors import models_usable
from inference.services import Caller

# The leaderboard reruns Elo BOOTSTRAP_ROUNDS times over every vote: each process keeps its copy until a
# vote (arena.services.battle_vote) stores a new version. The ledger columns change with every answer, not
# every vote, so they may lag by up to max_age.
LEADERBOARD_VERSION_KEY = "parley:arena:leaderboard-version"
LEADERBOARD = VersionedCache(LEADERBOARD_VERSION_KEY, max_age=300, max_entries=4)


def arena_models_for(*, user: User) -> list[str]:
    """The chat models the user may use (plan, teams, staff; inference.access) that are installed here."""
    return sorted(spec.name for spec in models_usable(caller=Caller(user=user), task="chat")
                  if spec.install_state == "ready")


def battle_get(*, user: User, battle_id: int) -> Battle | None:
    """One of the user's battles with its answers, or None (someone else's battles don't exist for them)."""
    return Battle.objects.filter(user=user, pk=battle_id).prefetch_related("answers").first()


def battles_of_user(*, user: User) -> QuerySet[Battle]:
    return Battle.objects.filter(user=user).order_by("-created_at", "-id")


def votes_all() -> list[Vote]:
    """Every vote, in the order it was cast (Elo's order)."""
    rows = (Battle.objects.exclude(vote="").filter(voted_at__isnull=False).order_by("voted_at", "id")
            .values_list("model_a", "model_b", "vote"))
    return [Vote(model_a=a, model_b=b, choice=choice) for a, b, choice in rows]


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    model: str
    rating: float
    ci_low: float
    ci_high: float
    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    answers: int  # arena answers in the ledger
    median_ttft_ms: float | None
    median_tokens_per_s: float | None
    cost_per_1k_requests: Decimal | None

    @property
    def ci_minus(self) -> float:
        return self.rating - self.ci_low

    @property
    def ci_plus(self) -> float:
        return self.ci_high - self.rating

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.ci_low) or math.isnan(self.ci_high))


# Speed and price of the arena's own answers, from the ledger (inference.models.UsageRecord). An answer's
# rows are its request id (first attempt) or that id and "-<n>" (retries). Tokens/s is the worker's decode
# rate: the tokens after the first over the time after the first. A request's cost is every attempt's.
_LEDGER_SQL = """
WITH rows AS (
    SELECT u.model_name, u.outcome, u.ttft_ms, u.duration_ms, u.completion_tokens, u.cost, a.id AS answer_id
    FROM arena_battleanswer a
    JOIN inference_usagerecord u
      ON u.request_id = a.request_id OR u.request_id LIKE a.request_id || '-%%'
    WHERE a.request_id <> '' AND u.task = 'chat'
)
SELECT model_name,
       COUNT(DISTINCT answer_id) AS answers,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) FILTER (WHERE outcome = 'ok' AND ttft_ms IS NOT NULL),
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY (completion_tokens - 1) / ((duration_ms - ttft_ms) / 1000.0))
           FILTER (WHERE outcome = 'ok' AND completion_tokens > 1 AND duration_ms > ttft_ms),
       SUM(cost) * 1000 / NULLIF(COUNT(DISTINCT answer_id), 0)
FROM rows
GROUP BY model_name
ORDER BY model_name
"""


def ledger_by_model() -> dict[str, dict]:
    """Per model: arena answers, median TTFT (ms), median tokens/s and cost per 1,000 requests ($)."""
    with connection.cursor() as cursor:
        cursor.execute(_LEDGER_SQL, [])
        rows = cursor.fetchall()
    return {name: {"answers": answers, "median_ttft_ms": ttft, "median_tokens_per_s": speed,
                   "cost_per_1k_requests": Decimal(cost).quantize(Decimal("0.0001")) if cost is not None else None}
            for name, answers, ttft, speed, cost in rows}


def _leaderboard_build() -> list[LeaderboardRow]:
    votes = votes_all()
    ratings = elo_ratings(votes)
    intervals = elo_bootstrap(votes, rounds=BOOTSTRAP_ROUNDS, seed=BOOTSTRAP_SEED)
    counts: dict[str, dict[str, int]] = {m: {"votes": 0, "wins": 0, "losses": 0, "ties": 0, "both_bad": 0}
                                         for m in ratings}
    for vote in votes:
        for model, side in ((vote.model_a, "a"), (vote.model_b, "b")):
            row = counts[model]
            row["votes"] += 1
            if vote.choice == "tie":
                row["ties"] += 1
            elif vote.choice == "both_bad":
                row["both_bad"] += 1
            elif vote.choice == side:
                row["wins"] += 1
            else:
                row["losses"] += 1
    ledger = ledger_by_model()
    ordered = sorted(ratings, key=lambda m: (-ratings[m], m))
    nan = (float("nan"), float("nan"))
    return [
        LeaderboardRow(rank=rank, model=model, rating=ratings[model], ci_low=intervals.get(model, nan)[0],
                       ci_high=intervals.get(model, nan)[1], **counts[model],
                       answers=ledger.get(model, {}).get("answers", 0),
                       median_ttft_ms=ledger.get(model, {}).get("median_ttft_ms"),
                       median_tokens_per_s=ledger.get(model, {}).get("median_tokens_per_s"),
                       cost_per_1k_requests=ledger.get(model, {}).get("cost_per_1k_requests"))
        for rank, model in enumerate(ordered, start=1)
    ]


def leaderboard() -> list[LeaderboardRow]:
    """Every voted model by Elo, with its 95% bootstrap interval, vote counts, and its answers' median TTFT,
    tokens/s and cost per 1,000 requests from the ledger. Cached per process until the next vote."""
    return LEADERBOARD.get("rows", _leaderboard_build)
