"""Turning per-item results into a run's figures: scores with Wilson intervals, latency percentiles, speed."""

from __future__ import annotations

import math

from common.bench import percentile

Z_95 = 1.959963984540054


def wilson(passed: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for `passed` of `n` (95% by default); (0, 1) when nothing was tried.
    Chosen over the normal approximation because S-7's 15 items per skill often score 0 or 1, where that
    approximation gives an interval of width zero."""
    if n <= 0:
        return 0.0, 1.0
    p = passed / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    # At 0 of n (n of n) the bound is exactly 0 (1); the formula leaves a rounding error there.
    low = 0.0 if passed == 0 else max(0.0, (centre - spread) / scale)
    high = 1.0 if passed == n else min(1.0, (centre + spread) / scale)
    return low, high


def score_of(passed: int, n: int) -> dict[str, float | int]:
    low, high = wilson(passed, n)
    return {"passed": passed, "n": n, "score": passed / n if n else 0.0, "ci_low": low, "ci_high": high}


def speed_of(results: list[dict]) -> dict[str, float | None]:
    """p50/p95 TTFT over the items that produced a token, and decode tokens/s over all of them together
    (decoded tokens after the first, over the time they took)."""
    ttfts = [r["ttft_ms"] for r in results if r.get("ttft_ms") is not None]
    tokens = seconds = 0.0
    for r in results:
        if r.get("tokens_per_s") and r.get("completion_tokens", 0) > 1:
            decoded = r["completion_tokens"] - 1
            tokens += decoded
            seconds += decoded / r["tokens_per_s"]
    return {
        "ttft_p50_ms": percentile(ttfts, 50) if ttfts else None,
        "ttft_p95_ms": percentile(ttfts, 95) if ttfts else None,
        "tokens_per_s": tokens / seconds if seconds else None,
    }
