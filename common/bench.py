"""Shared pieces of the `bench_*` commands: percentiles, a text table and the JSON line."""

from __future__ import annotations

import json
import statistics


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: list[tuple[str, object, str, str]]) -> str:
    """Rows of (metric, value, unit, target/verdict) as an aligned text table."""
    header = ("metric", "value", "unit", "target")
    cells = [header] + [(m, _fmt(v), u, t) for m, v, u, t in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(4)]
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(str(cell).ljust(widths[i]) if i != 1 else str(cell).rjust(widths[i])
                               for i, cell in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def as_json(name: str, figures: dict) -> str:
    return json.dumps({"bench": name, **figures}, default=float, sort_keys=True)
