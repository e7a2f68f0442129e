"""Deployment-wide figures on /metrics: read from Redis and the billing ledger at scrape time."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from common.heartbeat import KEY_PREFIX, heartbeat_store
from common.metrics import COUNTERS_KEY, counter_add
from common.redis_connection import redis_client

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _clean_redis():
    client = redis_client()
    keys = [COUNTERS_KEY, "gpu", "gpu.tiny-model", "default", KEY_PREFIX + "metrics-test@localhost"]
    client.delete(*keys)
    yield
    client.delete(*keys)


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_counters_bumped_by_workers_are_exported_from_redis_with_zeros_before_any():
    assert _value("parley_ingest_documents_total", outcome="failed") == 0
    counter_add("parley_ingest_passages", 12)
    counter_add("parley_ingest_documents", outcome="ready")
    counter_add("parley_ingest_documents", outcome="ready")

    assert _value("parley_ingest_passages_total") == 12
    assert _value("parley_ingest_documents_total", outcome="ready") == 2


def test_queue_depth_and_live_workers_include_each_models_queue():
    client = redis_client()
    heartbeat_store(hostname="metrics-test@localhost", payload={
        "hostname": "metrics-test@localhost", "queues": ["gpu"], "last_seen": time.time() - 2,
        "models": {"tiny-model": {"state": "loaded"}}})
    client.lpush("gpu.tiny-model", "job-1", "job-2")
    client.lpush("default", "job-3")

    assert _value("parley_queue_depth", queue="gpu.tiny-model") == 2
    assert _value("parley_queue_depth", queue="default") == 1
    assert _value("parley_queue_depth", queue="billing") == 0
    assert _value("parley_workers_alive", queue="gpu") >= 1
    assert _value("parley_worker_models_loaded", hostname="metrics-test@localhost", model="tiny-model") == 1
    assert 1 <= _value("parley_worker_heartbeat_age_seconds", hostname="metrics-test@localhost") < 15


def test_charge_attempts_are_counted_from_the_ledger():
    before = _value("parley_charge_attempts_total", status="failed")
    assert before is not None and _value("parley_stripe_webhooks_unprocessed") == 0
    assert _value("parley_charge_attempts_unsettled") == 0
