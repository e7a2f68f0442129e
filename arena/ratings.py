"""Elo ratings from blind votes, and their bootstrap confidence intervals.

The rules: every model starts at 1000; each vote moves both models by K=32 times the surprise,
score minus expected score, with expected = 1 / (1 + 10^((other - own) / 400)). A win scores 1,
a loss 0, a tie 0.5. "Both bad" also scores 0.5 each, as in LMSYS's Chatbot Arena: the user saw
two answers of the same (poor) quality, which is what a tie says about their relative strength.
The leaderboard counts it apart so nobody reads it as praise.

Online Elo depends on the order of the votes: the rating uses the order they were cast, and so does
each bootstrap round. A round draws as many votes as there are, with replacement, puts them back in
the order they were cast, and reruns Elo; the interval is the 2.5th and 97.5th percentiles over the
rounds. (Shuffled rounds measure another estimator: votes cast in a streak, a model that got worse
after an update, put the rating outside their interval.)
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

K_FACTOR = 32
INITIAL_RATING = 1000.0
BOOTSTRAP_ROUNDS = 200
BOOTSTRAP_SEED = 15

# What side A scores for each vote (B scores the rest).
SCORE_A = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}


@dataclass(frozen=True)
class Vote:
    model_a: str
    model_b: str
    choice: str  # a key of SCORE_A


def expected_score(rating: float, other: float) -> float:
    return 1.0 / (1.0 + 10 ** ((other - rating) / 400.0))


def elo_ratings(votes: Sequence[Vote], *, k: float = K_FACTOR, initial: float = INITIAL_RATING) -> dict[str, float]:
    """Each model's rating after the votes, applied in order."""
    ratings: dict[str, float] = {}
    for vote in votes:
        a = ratings.setdefault(vote.model_a, initial)
        b = ratings.setdefault(vote.model_b, initial)
        expected_a = expected_score(a, b)
        change = k * (SCORE_A[vote.choice] - expected_a)
        ratings[vote.model_a] = a + change
        ratings[vote.model_b] = b - change  # B's surprise is exactly minus A's: the sum is kept
    return ratings


def elo_bootstrap(votes: Sequence[Vote], *, rounds: int = BOOTSTRAP_ROUNDS, seed: int = BOOTSTRAP_SEED,
                  k: float = K_FACTOR, initial: float = INITIAL_RATING) -> dict[str, tuple[float, float]]:
    """A 95% interval for each model's rating: (2.5th, 97.5th percentile) of Elo over `rounds` resamples of the
    votes. The same votes and seed give the same intervals. A model in fewer than two resamples gets (nan, nan)."""
    if not votes:
        return {}
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    count = len(votes)
    for _ in range(rounds):
        resample = [votes[i] for i in sorted(rng.randrange(count) for _ in range(count))]
        for model, rating in elo_ratings(resample, k=k, initial=initial).items():
            samples.setdefault(model, []).append(rating)
    intervals = {}
    models = {vote.model_a for vote in votes} | {vote.model_b for vote in votes}
    for model in sorted(models):
        values = samples.get(model, [])
        if len(values) < 2:
            intervals[model] = (float("nan"), float("nan"))
            continue
        # 39 cut points at 2.5 %, 5 %, … 97.5 %: the first and the last bound the middle 95 %.
        cuts = statistics.quantiles(values, n=40, method="inclusive")
        intervals[model] = (cuts[0], cuts[-1])
    return intervals
