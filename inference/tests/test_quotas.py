"""Token budgets hold under concurrency: 20 parallel requests at a key with a small budget."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from django.db.models import Sum

from inference.models import UsageRecord
from inference.quotas import Limit, QuotaExceeded, quota_reserve
from inference.tests.factories import api_key_make

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

@dataclass
class Reply:
    status_code: int
    headers: dict
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


BUDGET = 400
MAX_TOKENS = 40


def test_parallel_requests_stay_within_the_token_budget(live_daphne, celery_worker, bundled_models):
    api_key, secret = api_key_make(tokens_per_day_limit=BUDGET)
    body = {"model": "smollm2-135m", "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": "Tell me about the moon."}]}

    def call(_: int) -> Reply:
        request = urllib.request.Request(
            live_daphne["url"] + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=180) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(call, range(20)))

    served = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(served) + len(limited) == 20, [r.text for r in responses if r.status_code not in (200, 429)]
    assert served and limited
    assert all(int(r.headers["Retry-After"]) > 0 for r in limited)
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    used = UsageRecord.objects.filter(api_key=api_key).aggregate(
        total=Sum("prompt_tokens") + Sum("completion_tokens"))["total"]
    one_request = max(r.json()["usage"]["total_tokens"] for r in served)
    assert used == sum(r.json()["usage"]["total_tokens"] for r in served)
    assert used <= BUDGET + one_request


def test_requests_per_minute_limit_admits_then_refuses_with_retry_after():
    limits = [Limit("key", f"rpm-test-{uuid.uuid4().hex}", "rpm", 2)]

    quota_reserve(limits=limits, tokens=0)
    quota_reserve(limits=limits, tokens=0)
    with pytest.raises(QuotaExceeded) as refused:
        quota_reserve(limits=limits, tokens=0)

    assert 0 < refused.value.retry_after <= 60
    assert "2 requests per minute" in refused.value.message


def test_token_budget_grants_what_is_left_and_settles_to_real_use():
    ident = f"tpd-test-{uuid.uuid4().hex}"
    limits = [Limit("user", ident, "tpd", 100), Limit("user", ident, "rpm", 100)]

    first = quota_reserve(limits=limits, tokens=80, min_tokens=10)
    second = quota_reserve(limits=limits, tokens=80, min_tokens=10)
    assert (first.granted, second.granted) == (80, 20)
    with pytest.raises(QuotaExceeded):
        quota_reserve(limits=limits, tokens=80, min_tokens=10)

    first.settle(30)  # the first request used less than it reserved: 50 tokens come back
    third = quota_reserve(limits=limits, tokens=80, min_tokens=10)
    assert third.granted == 50


def test_a_refused_request_changes_no_counter():
    ident = f"atomic-test-{uuid.uuid4().hex}"
    tight = [Limit("user", ident, "tpd", 1000), Limit("key", ident, "rpm", 1)]
    quota_reserve(limits=tight, tokens=100)

    with pytest.raises(QuotaExceeded):
        quota_reserve(limits=tight, tokens=100)

    # The token budget was not charged by the refused call: 900 tokens are still there.
    assert quota_reserve(limits=[Limit("user", ident, "tpd", 1000)], tokens=900).granted == 900


PLAN_RPM = 6


def test_parallel_requests_on_every_path_share_the_plans_requests_per_minute(live_daphne, celery_worker,
                                                                              bundled_models):
    """16 requests at once from one free user through four doors (/v1 chat, /v1 embeddings, a knowledge
    query, an SSE chat turn): the plan's 6 requests a minute admit at most 6, every other one is the plan's
    429 naming the limit (the SSE turn's too, before any stream starts), and the counter in Redis ends at
    what was admitted."""
    import time

    from billing.tests.factories import free_plan_set
    from chat.tests.factories import conversation_make
    from common.redis_connection import redis_client
    from knowledge.tests.factories import collection_make, document_ready

    free_plan_set(requests_per_minute=PLAN_RPM)
    api_key, secret = api_key_make()
    conversations = [conversation_make(user=api_key.user) for _ in range(4)]
    collection = collection_make(user=api_key.user)
    document_ready(collection=collection, user=api_key.user, text="The lighthouse keeper trims the lamp at dusk.")
    for key in redis_client().scan_iter(f"parley:quota:user:{api_key.user.pk}:rpm:*"):
        redis_client().delete(key)  # the ingest above was one of this minute's requests
    doors = [
        ("/v1/chat/completions", {"model": "smollm2-135m", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "Say hi."}]}),
        ("/v1/embeddings", {"model": "embed-default", "input": "lighthouse"}),
        ("/api/knowledge/query", {"query": "lighthouse"}),
        *[(f"/api/conversations/{c.pk}/messages", {"text": "Say hi."}) for c in conversations],
    ]
    calls = [doors[i % 3] for i in range(12)] + doors[3:]

    def call(door: tuple[str, dict]) -> Reply:
        path, body = door
        request = urllib.request.Request(
            live_daphne["url"] + path, data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=180) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    if time.time() % 60 > 40:  # all 16 must land in one minute's window
        time.sleep(61 - time.time() % 60)
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        responses = list(pool.map(call, calls))

    admitted = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(limited) == len(calls), [(r.status_code, r.text[:200]) for r in responses]
    doors_seen = [(door[0], reply.status_code) for door, reply in zip(calls, responses, strict=True)]
    assert 1 <= len(admitted) <= PLAN_RPM, doors_seen
    assert len(limited) >= len(calls) - PLAN_RPM
    for reply in limited:
        error = reply.json().get("error") or reply.json()
        assert error["code"] == "plan_limit" and error["limit"] == "requests_per_minute", error
        assert int(reply.headers["Retry-After"]) > 0
    counters = [int(redis_client().get(key)) for key in
                redis_client().scan_iter(f"parley:quota:user:{api_key.user.pk}:rpm:*")]
    assert sum(counters) == len(admitted)
