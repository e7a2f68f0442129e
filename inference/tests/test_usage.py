"""Users see their own usage, through the page and the API; never another user's."""

from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from inference.services import usage_record_create
from inference.tests.factories import api_key_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_users(bundled_models):
    owner, outsider = user_make(email="owner@example.com"), user_make(email="outsider@example.com")
    usage_record_create(request_id="req-owner-1", user_id=owner.pk, api_key_id=None,
                        spec_name="qwen2.5-coder-0.5b", route_alias="chat-default", task="chat",
                        prompt_tokens=120, completion_tokens=80, ttft_ms=180, duration_ms=900)
    usage_record_create(request_id="req-owner-2", user_id=owner.pk, api_key_id=None, spec_name="whisper-tiny.en",
                        route_alias="", task="stt", audio_seconds=3.5, duration_ms=400)
    return owner, outsider


def _get(client, path: str, secret: str):
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_usage_summary_by_day_and_model(client, two_users):
    owner, _ = two_users
    _, secret = api_key_make(user=owner)

    rows = _get(client, "/api/usage/", secret).json()

    by_model = {row["model"]: row for row in rows}
    assert by_model["qwen2.5-coder-0.5b"]["prompt_tokens"] == 120
    assert by_model["whisper-tiny.en"]["audio_seconds"] == 3.5


def test_outsiders_key_cannot_read_another_users_usage(client, two_users):
    _, outsider = two_users
    _, secret = api_key_make(user=outsider)

    assert _get(client, "/api/usage/", secret).json() == []
    assert _get(client, "/api/usage/records/", secret).json() == []
    response = _get(client, "/api/usage/records/req-owner-1/", secret)
    assert response.status_code == 404


def test_owner_reads_their_record(client, two_users):
    owner, _ = two_users
    _, secret = api_key_make(user=owner)

    record = _get(client, "/api/usage/records/req-owner-1/", secret).json()

    assert record["completion_tokens"] == 80 and record["route"] == "chat-default"


def test_usage_page_shows_only_the_users_own_rows(client, two_users):
    owner, outsider = two_users
    client.force_login(outsider)
    assert "qwen2.5-coder-0.5b" not in client.get("/app/usage/").content.decode()

    client.force_login(owner)
    page = client.get("/app/usage/").content.decode()
    assert "qwen2.5-coder-0.5b" in page and "whisper-tiny.en" in page


def test_usage_api_needs_the_usage_scope(client, two_users):
    owner, _ = two_users
    _, secret = api_key_make(user=owner, scopes=["inference"])

    assert _get(client, "/api/usage/", secret).status_code == 403
