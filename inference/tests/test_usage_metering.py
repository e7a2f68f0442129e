"""The usage page, the usage API and team totals count requests as the plan does.

A voice turn makes a dozen or so partial transcripts (previews) before its final one, and a document's
ingest embeds in batches: both count against nothing in a plan, so they are not requests on the page, in the
API's list or in a team's totals. A chat turn's query embedding, summary or title is part of the turn: its
tokens count, it is not a request of its own."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.tests.factories import user_make
from inference.selectors import usage_records_of_user, usage_summary_of_user, usage_totals_of_users
from inference.services import usage_record_create
from inference.tests.factories import api_key_make

pytestmark = pytest.mark.django_db

SPECS = {"chat": "smollm2-135m", "embed": "all-minilm-l6-v2", "stt": "whisper-tiny.en", "tts": "piper-en-us-joe"}


def _row(user, n: list[int], task: str, metering: str, **figures) -> str:
    n[0] += 1
    request_id = f"{metering or 'old'}-{n[0]}"
    usage_record_create(request_id=request_id, user_id=user.pk, api_key_id=None, spec_name=SPECS[task],
                        route_alias="", task=task, metering=metering, duration_ms=40, **figures)
    return request_id


@pytest.fixture
def a_voice_turn_and_more():
    """One voice turn (12 previews, the final transcript, a grounded reply, its query embedding, speech),
    a document's ingest in 3 batches, and a chat request from before the ledger recorded metering."""
    user, n = user_make(), [0]
    previews = [_row(user, n, "stt", "preview") for _ in range(12)]
    _row(user, n, "stt", "stt", audio_seconds=3.2)
    _row(user, n, "embed", "lookup", prompt_tokens=9)
    _row(user, n, "chat", "chat", prompt_tokens=300, completion_tokens=40)
    _row(user, n, "tts", "tts", characters=180)
    for _ in range(3):
        _row(user, n, "embed", "ingest", prompt_tokens=2000)
    _row(user, n, "chat", "", prompt_tokens=100, completion_tokens=10)
    return user, previews


def test_requests_are_what_the_plan_counts(a_voice_turn_and_more):
    user, _ = a_voice_turn_and_more
    summary = {(row["task"], row["model_name"]): row for row in usage_summary_of_user(user=user)}
    assert summary[("stt", SPECS["stt"])]["requests"] == 1  # not 13
    assert summary[("chat", SPECS["chat"])]["requests"] == 2  # the turn's reply, and the older row
    assert summary[("embed", SPECS["embed"])]["requests"] == 0  # a lookup and ingest batches
    assert summary[("embed", SPECS["embed"])]["prompt_tokens"] == 9 + 3 * 2000  # their tokens still show
    assert summary[("tts", SPECS["tts"])]["requests"] == 1
    [totals] = usage_totals_of_users(user_ids=[user.pk])
    assert totals["requests"] == 4


def test_the_lists_leave_out_what_counts_against_nothing(a_voice_turn_and_more):
    user, previews = a_voice_turn_and_more
    listed = list(usage_records_of_user(user=user, metered_only=True))
    assert sorted(r.metering for r in listed) == ["", "chat", "lookup", "stt", "tts"]
    assert usage_records_of_user(user=user).count() == 20  # the ledger itself keeps every row

    key, secret = api_key_make(user=user)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    records = api.get("/api/usage/records/").json()
    assert sorted(r["metering"] for r in records) == ["", "chat", "lookup", "stt", "tts"]
    preview = api.get(f"/api/usage/records/{previews[0]}/")  # still there by its id
    assert preview.status_code == 200 and preview.json()["metering"] == "preview"


def test_the_usage_page_counts_one_request_per_call_and_marks_parts_of_one(client, a_voice_turn_and_more):
    user, _ = a_voice_turn_and_more
    client.force_login(user)
    page = client.get("/app/usage/").content.decode()
    assert '<h2 class="card__title">Requests</h2><p class="card__lead">4</p>' in page
    recent = page[page.index('id="recent"'):]
    assert recent.count("<tr><td>") == 5
    assert recent.count("(part of a request)") == 1  # the query embedding
