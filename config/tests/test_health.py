from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from config import health

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def token(settings):
    settings.PARLEY_METRICS_TOKEN = TOKEN
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def test_healthz_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.worker
def test_readyz_reports_every_part_ok_with_a_live_worker(client, celery_worker, token):
    response = client.get("/readyz", **token)

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
def test_readyz_is_503_and_names_the_queue_nobody_serves(client, celery_worker, monkeypatch, token):
    monkeypatch.setattr(health, "REQUIRED_QUEUES", (*health.REQUIRED_QUEUES, "nightly"))

    response = client.get("/readyz", **token)

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


def test_metrics_are_exported_to_the_token_and_to_staff(client, token):
    client.get("/healthz")

    response = client.get("/metrics", **token)

    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content
    client.force_login(user_make(is_staff=True))
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic " + TOKEN, "Bearer "])
def test_metrics_refuse_anyone_else(client, token, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401
    assert b"django_http" not in response.content
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_metrics_refuse_signed_in_users_who_are_not_staff(client, token):
    client.force_login(user_make())

    assert client.get("/metrics").status_code == 401


def test_metrics_refuse_everyone_when_no_token_is_set(client, settings):
    settings.PARLEY_METRICS_TOKEN = ""

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


@pytest.mark.worker
def test_anonymous_readyz_says_only_ok_or_not(client, celery_worker, monkeypatch, token):
    assert client.get("/readyz").json() == {"status": "ok"}

    monkeypatch.setattr(health, "REQUIRED_QUEUES", (*health.REQUIRED_QUEUES, "nightly"))
    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "error"}
    assert celery_worker["hostname"].encode() not in response.content
