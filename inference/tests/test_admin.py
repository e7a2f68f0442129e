"""Admin's load / unload reach a live worker by broadcast; the heartbeat proves what it holds."""

from __future__ import annotations

import csv
import io
import time

import pytest

from accounts.tests.factories import staff_login, user_make
from common.heartbeat import workers_alive
from inference.models import ModelSpec, UsageRecord
from inference.services import usage_record_create

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _held(hostname: str, model: str) -> dict | None:
    worker = next((w for w in workers_alive() if w["hostname"] == hostname), None)
    return (worker or {}).get("models", {}).get(model)


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _action(client, action: str, spec: ModelSpec):
    return client.post("/admin/inference/modelspec/", {"action": action, "_selected_action": [spec.pk]}, follow=True)


def test_admin_load_and_unload_change_what_the_worker_holds(client, celery_worker, bundled_models):
    staff_login(client, user_make(is_staff=True, is_superuser=True))
    spec = ModelSpec.objects.get(name="whisper-base")
    hostname = celery_worker["hostname"]

    response = _action(client, "load", spec)
    assert "started on" in response.content.decode()
    _wait(lambda: (_held(hostname, "whisper-base") or {}).get("state") == "loaded", "whisper-base to load")
    page = client.get("/admin/inference/modelspec/").content.decode()
    assert f"{hostname}: <strong>loaded</strong>" in page

    _action(client, "unload", spec)
    _wait(lambda: _held(hostname, "whisper-base") is None, "whisper-base to unload")


def test_a_failed_load_shows_its_reason_in_admin(client, celery_worker, bundled_models):
    staff_login(client, user_make(is_staff=True, is_superuser=True))
    spec = ModelSpec.objects.create(name="missing-voice", task="tts", backend="piper", source="/nowhere/voice.onnx")

    _action(client, "load", spec)
    _wait(lambda: (_held(celery_worker["hostname"], "missing-voice") or {}).get("state") == "failed", "the failure")

    page = client.get("/admin/inference/modelspec/").content.decode()
    assert "does not exist" in page


def test_staff_export_usage_as_csv(client, bundled_models):
    staff = user_make(is_staff=True, is_superuser=True)
    user = user_make(email="csv@example.com")
    usage_record_create(request_id="req-csv-1", user_id=user.pk, api_key_id=None, spec_name="smollm2-135m",
                        route_alias="chat-fast", task="chat", prompt_tokens=1000, completion_tokens=500)
    staff_login(client, staff)

    response = client.post("/admin/inference/usagerecord/", {
        "action": "export_csv", "_selected_action": list(UsageRecord.objects.values_list("pk", flat=True))})

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert response["Content-Type"] == "text/csv"
    assert rows[0]["request_id"] == "req-csv-1" and rows[0]["user"] == "csv@example.com"
    assert float(rows[0]["cost"]) == pytest.approx(1000 * 0.0001 / 1000 + 500 * 0.0002 / 1000)
