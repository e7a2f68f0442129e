"""A run end to end: queued on commit, run by the Celery task on `default`, each item answered by the tiny real
model on `gpu`, graded, recorded, its progress sent to the user's notifications group, its cost from the ledger."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from accounts.tests.factories import user_make
from billing.tests.factories import free_plan_set
from common.notifications import user_group
from evaluation.models import EvalResult, EvalRun
from evaluation.services import PROGRESS_EVENT, evalrun_start
from inference.models import UsageRecord

pytestmark = [pytest.mark.worker, pytest.mark.engine, pytest.mark.django_db(transaction=True)]


def _watch(user_id: int, start, timeout: float = 180) -> tuple[int, list[dict]]:
    """Join the user's group, start the run, and collect its events until it ends."""

    async def watch() -> tuple[int, list[dict]]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(user_group(user_id), channel)
        run_id = await sync_to_async(start)()
        events = []
        while True:
            message = await asyncio.wait_for(layer.receive(channel), timeout)
            if message.get("event") != PROGRESS_EVENT:
                continue
            events.append(message["data"])
            if message["data"]["status"] in ("done", "failed"):
                return run_id, events

    return async_to_sync(watch)()


def test_a_run_of_the_tiny_model_through_celery(celery_worker, bundled_models):
    free_plan_set(requests_per_minute=1000, tokens_per_day=10_000_000)
    staff = user_make(is_staff=True)

    run_id, events = _watch(staff.pk, lambda: evalrun_start(
        user=staff, model="smollm2-135m", skills=["facts", "grounded", "code"], limit=1,
        judge_model="smollm2-135m").pk)

    run = EvalRun.objects.get(pk=run_id)
    assert run.status == "done", run.error
    assert [e["done"] for e in events] == [1, 2, 3, 3] and [e["percent"] for e in events] == [33, 67, 100, 100]
    assert [e.get("skill") for e in events[:3]] == ["facts", "grounded", "code"]
    assert events[-1]["score"] == run.score
    results = list(EvalResult.objects.filter(run=run).order_by("position"))
    assert [r.item_key for r in results] == ["s7:facts-01", "s7:grounded-01", "s7:code-01"]
    for result in results:
        assert result.answer and result.detail and result.spec == "smollm2-135m" and not result.error
        assert result.completion_tokens > 0 and result.ttft_ms > 0 and result.request_id
        assert "Question:" in result.prompt or "python" in result.prompt
    assert run.items_done == 3 and set(run.scores) == {"facts", "grounded", "code"}
    assert run.score == sum(r.passed for r in results) / 3
    assert 0 <= run.score_ci_low <= run.score <= run.score_ci_high <= 1
    assert run.ttft_p50_ms > 0 and run.ttft_p95_ms >= run.ttft_p50_ms and run.tokens_per_s > 0
    assert run.peak_memory_mb > 50  # the worker process holding the model (and llama-server, its child)
    ledger = UsageRecord.objects.filter(request_id__in=[r.request_id for r in results], user=staff)
    assert ledger.count() == 3 and sum(row.cost for row in ledger) == run.cost
    # The judge asked the same model once per item, through the same ledger; its score is labelled, never a grade.
    assert UsageRecord.objects.filter(user=staff).count() == 6 and run.judge_model == "smollm2-135m"
    assert run.answered_by == ["smollm2-135m"] and run.finished_at is not None


def test_bench_eval_prints_the_table_and_json(celery_worker, bundled_models):
    import json
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("bench_eval", models=["smollm2-135m"], skills=["facts", "safety"], limit=1, stdout=out,
                 stderr=StringIO())

    text = out.getvalue()
    figures = json.loads(text.strip().splitlines()[-1])
    assert figures["bench"] == "eval" and figures["model"] == "smollm2-135m" and figures["items"] == 2
    assert set(figures) >= {"facts_score", "safety_score", "score", "ttft_p50_ms", "tokens_per_s", "peak_memory_mb",
                            "cost_per_1k_requests"}
    assert "overall" in text and "95% CI" in text and "peak worker memory" in text
    run = EvalRun.objects.get(pk=figures["run_id"])
    assert run.status == "done" and run.user.email == "bench-eval@parley.localhost"
