"""`bench_inference --quick` end to end: its own stack, the direct process, the peer when llama-server is
built, the mixed run. Asserts the report's shape, never its timings (they depend on the machine)."""

from __future__ import annotations

import io
import json
import math

import pytest
from django.conf import settings
from django.core.management import call_command

from inference.management.commands.bench_inference import figure_keys
from inference.models import UsageRecord

# Slow (a few minutes: it starts a worker, Daphne, a direct process and maybe llama-server); deselect
# with -m "not worker".
pytestmark = [pytest.mark.worker, pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def _empty_redis_db() -> int:
    """A Redis db nobody uses, for the bench's own stack: not this session's (its worker fixture would take
    the bench's jobs), nor another test run's."""
    import redis

    base = settings.REDIS_URL.rsplit("/", 1)[0]
    for number in range(15, -1, -1):
        if redis.Redis.from_url(f"{base}/{number}").dbsize() == 0:
            return number
    pytest.fail("Every Redis db holds keys; the bench needs an empty one for its stack.")


def test_quick_bench_reports_every_figure(bundled_models, tmp_path):
    out, printed = tmp_path / "bench.json", io.StringIO()

    # SmolLM2 and four clients: the same code paths as the full run on Qwen, in a fraction of the time.
    call_command("bench_inference", "--quick", "--skip-audio", "--model", "smollm2-135m", "--clients", "4",
                 "--json-out", str(out),
                 "--redis-db", str(_empty_redis_db()), stdout=printed, stderr=io.StringIO())

    data = json.loads(out.read_text())
    expected = figure_keys(audio=False, peer=bool(data["peer_ran"]))
    assert [key for key in expected if key not in data] == []
    assert {key: data[key] for key in expected
            if isinstance(data[key], bool) or not isinstance(data[key], int | float)} == {}
    # Figures that every run must have measured, whatever the machine's speed.
    measured = ["llm_direct_ttft_p50_ms", "llm_api_ttft_p50_ms", "llm_direct_tokens_per_s", "llm_api_tokens_per_s",
                "llm_api_aggregate_tps_4_mixed_temp", "idle_ws_short_ttft_p50_ms", "idle_v1_short_ttft_p50_ms",
                "idle_knowledge_long_ttft_p50_ms", "mixed_tokens_per_s", "mixed_ws_short_ttft_p99_ms",
                "mixed_v1_short_ttft_p99_ms", "embed_single_query_ms"]
    assert [key for key in measured if not math.isfinite(data[key]) or data[key] <= 0] == []
    assert data["mixed_requests"] >= 4 and data["quick"] == 1
    # The report went to stdout as well: the table with its verdicts, then the same JSON.
    text = printed.getvalue()
    assert "API overhead p50" in text and ("✓ met" in text or "✗ MISSED" in text)
    assert json.loads(text.strip().splitlines()[-1]).keys() == data.keys()
    if not data["peer_ran"]:
        assert "models_install" in text
    # The knowledge answers were real chat requests through the stack, with their usage rows.
    assert UsageRecord.objects.filter(api_key__name__startswith="bench-knowledge-", task="chat").exists()
