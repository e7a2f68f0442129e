"""Fuzzing as a test: no input, however hostile, gets a response of 500 or more.

Two fuzzers, both in-process against the real stack (PostgreSQL, Redis), both bounded and seeded:
- schemathesis (4.x) over every operation of /api/schema/, with an owner's API key;
- common/fuzz.py over every form and query parameter of the pages, signed in as the owner.

The plan's model budgets are zero here, so a request that passes validation stops at the quota (429)
instead of waiting on a model: what is fuzzed is everything in front of the models. A longer
run against a live server is `python manage.py fuzz`.
"""

from __future__ import annotations

import logging

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections

from accounts.services import membership_add, team_create
from accounts.tests.factories import user_make
from billing.tests.factories import free_plan_set
from chat.tests.factories import conversation_make
from common.fuzz import HOSTILE_VALUES_QUICK, api_fuzz, pages_fuzz
from inference.tests.factories import api_key_make
from knowledge.services import document_create_from_text
from knowledge.tests.factories import collection_make

pytestmark = pytest.mark.django_db

SEED = 20261203
EXAMPLES_PER_OPERATION = 15


@pytest.fixture
def zero_model_budgets():
    """The owner's (free) plan allows any number of requests but no tokens, voice or speech."""
    free_plan_set(tokens_per_day=0, voice_minutes_per_day=0, speech_characters_per_day=0,
                  requests_per_minute=1_000_000, knowledge_documents=1_000_000, api_keys=1_000_000)


@pytest.fixture
def owner(bundled_models, zero_model_budgets):
    user = user_make(email="owner@example.com")
    team = team_create(name="Support", owner=user)
    membership_add(team=team, user=user_make())
    collection = collection_make(user=user, name="Handbook")
    document, _ = document_create_from_text(user=user, collection=collection, title="Lamps",
                                            text="Lighthouse keepers trim the lamp at dusk. " * 30)
    conversation = conversation_make(user=user)
    return {"user": user, "collection": collection, "document": document, "conversation": conversation}


# --------------------------------------------------------------------------- pages


def test_no_form_or_query_parameter_gets_a_5xx(client, owner, caplog):
    client.force_login(owner["user"])
    client.raise_request_exception = False  # a crash is a 500 to count, not an exception here

    def get(path: str, params: dict[str, str]) -> tuple[int, str]:
        response = client.get(path, params)
        return response.status_code, response.content.decode(errors="replace")

    def post(path: str, data: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[int, str]:
        payload = {**data, **{name: SimpleUploadedFile(filename, content) for name, (filename, content)
                              in files.items()}}
        response = client.post(path, payload)
        return response.status_code, response.content.decode(errors="replace")

    pages = ["/app/", "/app/assistants/", "/app/assistants/new/", "/app/chats/",
             f"/app/chats/{owner['conversation'].pk}/", "/app/keys/", "/app/usage/", "/app/knowledge/",
             f"/app/knowledge/collections/{owner['collection'].pk}/",
             f"/app/knowledge/documents/{owner['document'].pk}/", "/app/knowledge/search/", "/billing/",
             "/billing/checkout/", "/billing/card/", "/accounts/email/", "/accounts/password/change/"]
    with caplog.at_level(logging.ERROR, logger="django.request"):
        report = pages_fuzz(get=get, post=post, pages=pages, values=HOSTILE_VALUES_QUICK)

    print(f"pages: {report.requests} requests, statuses {sorted(report.statuses.items())}")
    assert report.requests > 1000
    assert report.findings == [], "\n".join(map(str, report.findings)) + "\n" + caplog.text[-3000:]


# --------------------------------------------------------------------------- the API, by schemathesis


@pytest.fixture
def api_schema(db):
    # As Django's test client does: a request must not close the connection that holds the
    # test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def owner_key(owner) -> str:
    return api_key_make(user=owner["user"])[1]


def test_no_api_operation_answers_5xx(api_schema, owner_key):
    report = api_fuzz(schema=api_schema, headers={"Authorization": f"Bearer {owner_key}"},
                      examples=EXAMPLES_PER_OPERATION, seed_value=SEED)

    print(f"schemathesis: {report.requests} requests, statuses {sorted(report.statuses.items())}")
    assert report.requests > 500
    assert report.findings == [], "\n".join(map(str, report.findings))
