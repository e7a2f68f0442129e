"""A real task through Redis to a real worker process and back."""

from __future__ import annotations

import time

import pytest

from common.heartbeat import workers_alive
from common.tasks import ping

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("queue", ["default", "billing", "gpu"])
def test_a_task_sent_to_each_queue_comes_back_from_the_live_worker(celery_worker, queue):
    sent_at = time.time()

    result = ping.apply_async(args=[sent_at], queue=queue).get(timeout=30)

    assert result["sent_at"] == sent_at
    assert result["received_at"] >= sent_at


def test_worker_heartbeat_lists_its_queues(celery_worker):
    worker = next(w for w in workers_alive() if w["hostname"] == celery_worker["hostname"])

    assert worker["queues"] == ["billing", "default", "gpu"]
    assert time.time() - worker["last_seen"] < 30
