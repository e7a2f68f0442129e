"""Elo from votes, and its bootstrap interval."""

from __future__ import annotations

import math

import pytest

from arena.ratings import Vote, elo_bootstrap, elo_ratings


def test_elo_on_a_hand_checked_sequence_of_votes():
    # K = 32, everyone starts at 1000, expected(A) = 1 / (1 + 10^((B - A) / 400)).
    # 1. x beats y: expected 0.5, change 32 × 0.5 = 16                 → x 1016, y 984.
    # 2. y ties z: expected(y) = 1 / (1 + 10^(16/400)) = 1 / 2.096478 = 0.476991;
    #    change 32 × (0.5 − 0.476991) = +0.73629                        → y 984.7363, z 999.2637.
    # 3. z (A) against x (B), B wins: expected(z) = 1 / (1 + 10^(16.7363/400)) = 1 / 2.101135 = 0.475933;
    #    change 32 × (0 − 0.475933) = −15.22986                          → z 984.0338, x 1031.2299.
    # 4. x and z both bad, a tie: expected(x) = 1 / (1 + 10^(−47.1961/400)) = 1 / 1.762108 = 0.567502;
    #    change 32 × (0.5 − 0.567502) = −2.16006                          → x 1029.0698, z 986.1939.
    votes = [Vote("x", "y", "a"), Vote("y", "z", "tie"), Vote("z", "x", "b"), Vote("x", "z", "both_bad")]

    ratings = elo_ratings(votes)

    assert ratings == pytest.approx({"x": 1029.0698, "y": 984.7363, "z": 986.1939}, abs=0.01)
    assert sum(ratings.values()) == pytest.approx(3000)  # every change is one model's gain, the other's loss


def test_a_tie_between_equals_changes_nothing_and_both_bad_is_a_tie():
    assert elo_ratings([Vote("x", "y", "tie")]) == {"x": 1000, "y": 1000}
    assert elo_ratings([Vote("x", "y", "a"), Vote("x", "y", "both_bad")]) == \
        elo_ratings([Vote("x", "y", "a"), Vote("x", "y", "tie")])


def _votes() -> list[Vote]:
    # x wins 14 of 20 against y, ties 3 and loses 3; y beats z 6 times and loses 4.
    return ([Vote("x", "y", "a")] * 7 + [Vote("y", "x", "b")] * 7 + [Vote("x", "y", "tie")] * 3
            + [Vote("y", "x", "a")] * 3 + [Vote("y", "z", "a")] * 6 + [Vote("z", "y", "a")] * 4)


def test_the_bootstrap_interval_is_the_same_with_the_same_seed_and_holds_the_point_estimate():
    votes = _votes()
    ratings = elo_ratings(votes)

    first = elo_bootstrap(votes, rounds=200, seed=7)
    again = elo_bootstrap(votes, rounds=200, seed=7)
    other = elo_bootstrap(votes, rounds=200, seed=8)

    assert first == again
    assert first != other  # the seed is what fixes it
    assert set(first) == {"x", "y", "z"}
    for model, (low, high) in first.items():
        assert low < ratings[model] < high, (model, low, ratings[model], high)
    assert first["x"][1] - first["x"][0] > 10  # 30 votes leave real doubt


def test_no_votes_no_intervals_and_one_vote_a_defined_one():
    assert elo_bootstrap([]) == {}
    interval = elo_bootstrap([Vote("x", "y", "a")], rounds=50)
    assert interval["x"] == (1016, 1016) and interval["y"] == (984, 984)
    assert not any(math.isnan(bound) for bound in interval["x"])
