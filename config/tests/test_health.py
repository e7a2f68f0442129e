from __future__ import annotations

import pytest

from config import health

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.worker
def test_readyz_reports_every_part_ok_with_a_live_worker(client, celery_worker):
    response = client.get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "pgvector", "redis", "celery"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["latency_ms"] >= 0
    assert body["checks"]["postgres"]["version"].startswith("18")
    assert celery_worker["hostname"] in body["checks"]["celery"]["queues"]["gpu"]


@pytest.mark.worker
def test_readyz_is_503_and_names_the_queue_nobody_serves(client, celery_worker, monkeypatch):
    monkeypatch.setattr(health, "REQUIRED_QUEUES", (*health.REQUIRED_QUEUES, "nightly"))

    response = client.get("/readyz")

    assert response.status_code == 503
    celery = response.json()["checks"]["celery"]
    assert celery["status"] == "error"
    assert "nightly" in celery["error"]


def test_the_database_is_postgres_with_pgvector_working():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,2,3]'::vector <=> '[1,2,4]'::vector")
        (distance,) = cursor.fetchone()

    assert connection.vendor == "postgresql"
    assert version >= "0.8"
    assert 0 < distance < 0.01


def test_metrics_are_exported(client):
    client.get("/healthz")

    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content
