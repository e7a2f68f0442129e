"""Plans that mean something: each limit of the free plan is hit where requests enter, answers with the
named error, and is lifted by buying Pro through the real flow (localstripe); suspension falls back at once.
Everything is real: the worker, the models, Redis, PostgreSQL and the Stripe stand-in."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client

from accounts.tests.factories import user_make
from billing import clock
from billing.models import Purchase
from billing.selectors import entitlements_for_user
from billing.services import card_attach_test_card, charge_due_run, purchase_cancel, purchase_create
from billing.tests.factories import VISA, free_plan_set, offer_make, purchase_make
from common.errors import ApplicationError
from common.stack import wait_for
from inference.tests.factories import api_key_make
from inference.tests.speech import speech_clip

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("djstripe_local")]

S = Purchase.Status


def _api(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def _buy_pro(user) -> Purchase:
    card_attach_test_card(user=user, number=VISA, exp_month=12, exp_year=clock.now().year + 3, cvc="123")
    return purchase_make(user=user)


# Each row: the plan field set to its edge, and a request that meets it. A request returns the response.
def _chat(client: Client, tmp_path=None, **body) -> object:
    payload = {"model": "smollm2-135m", "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}],
               **body}
    return client.post("/v1/chat/completions", json.dumps(payload), content_type="application/json")


def _embed(client: Client, tmp_path) -> object:
    return client.post("/v1/embeddings", json.dumps({"model": "embed-default", "input": ["a lighthouse"]}),
                       content_type="application/json")


def _transcribe(client: Client, tmp_path) -> object:
    upload = io.BytesIO(speech_clip("hello there", tmp_path).read_bytes())
    upload.name = "hello.wav"
    return client.post("/v1/audio/transcriptions", {"model": "stt-default", "file": upload})


def _speak(client: Client, tmp_path) -> object:
    return client.post("/v1/audio/speech", json.dumps({"model": "tts-default", "voice": "joe", "input": "Hello.",
                                                       "response_format": "wav"}), content_type="application/json")


def _document(client: Client, tmp_path) -> object:
    from knowledge.services import collection_create

    user = client.user
    collection = collection_create(user=user, name=f"Notes {uuid.uuid4().hex[:8]}")
    upload = io.BytesIO(b"The lamp on Skerry Point burns paraffin oil.\n" * 20)
    upload.name = "notes.txt"
    return client.post(f"/api/knowledge/collections/{collection.pk}/documents", {"file": upload})


LIMITS = [
    ("requests_per_minute", {"requests_per_minute": 0}, _embed, 429),
    ("tokens_per_day", {"tokens_per_day": 0}, _embed, 429),
    ("max_tokens_per_reply", {"max_tokens_per_reply": 4}, _chat, 402),
    ("voice_minutes_per_day", {"voice_minutes_per_day": 0}, _transcribe, 429),
    ("speech_characters_per_day", {"speech_characters_per_day": 0}, _speak, 429),
    ("knowledge_documents", {"knowledge_documents": 0}, _document, 402),
    ("knowledge_megabytes", {"knowledge_megabytes": 0}, _document, 402),
]


@pytest.mark.worker
@pytest.mark.parametrize(("limit", "edge", "request_make", "status"), LIMITS, ids=[row[0] for row in LIMITS])
def test_a_free_user_hits_each_limit_then_pro_lifts_it(limit, edge, request_make, status, stand_in, celery_worker,
                                                       bundled_models, tmp_path):
    free_plan_set(**edge)
    user = user_make()
    _, secret = api_key_make(user=user)
    client = _api(secret)
    client.user = user

    refused = request_make(client, tmp_path)
    error = refused.json()["error"]
    assert refused.status_code == status, refused.content
    assert (error["code"], error["limit"], error["plan"]) == ("plan_limit", limit, "free")
    assert error["upgrade_url"] == "/billing/" and error["upgrade_plan"] == "pro"
    assert "Free plan" in error["message"] and "Parley Pro includes" in error["message"]
    if status == 429:
        assert int(refused["Retry-After"]) > 0 and error["resets_at"]

    _buy_pro(user)
    served = request_make(client, tmp_path)
    assert served.status_code in (200, 201, 202), served.content

    # Suspension falls back to the free plan at once.
    purchase = Purchase.objects.get(user=user)
    Purchase.objects.filter(pk=purchase.pk).update(status=S.SUSPENDED)
    again = request_make(client, tmp_path)
    assert again.status_code == status and again.json()["error"]["code"] == "plan_limit"


@pytest.mark.worker
def test_an_api_key_over_the_plan_is_refused_until_pro(stand_in, celery_worker, bundled_models):
    from accounts.services import apikey_create

    free_plan_set(api_keys=1)
    user = user_make()
    apikey_create(user=user, name="first")

    with pytest.raises(ApplicationError) as refused:
        apikey_create(user=user, name="second")
    assert (refused.value.status, refused.value.code, refused.value.extra["limit"]) == (402, "plan_limit", "api_keys")
    assert "1 API keys" in refused.value.message and "upgrade at /billing/" in refused.value.message

    _buy_pro(user)
    apikey_create(user=user, name="second")


@pytest.mark.worker
def test_the_quality_route_is_for_pro_and_says_so(stand_in, celery_worker, bundled_models):
    offer_make()  # Pro on sale, as the migrations install it
    user = user_make()
    _, secret = api_key_make(user=user)
    client = _api(secret)

    refused = _chat(client, model="chat-quality")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "model_not_in_plan" and "Parley Pro" in error["message"]
    assert "chat-quality" not in [m["id"] for m in client.get("/v1/models").json()["data"]]

    _buy_pro(user)
    assert "chat-quality" in [m["id"] for m in client.get("/v1/models").json()["data"]]
    served = _chat(client, model="chat-quality")
    assert served.status_code == 200, served.content


@pytest.mark.parametrize("status", [S.GRACE, S.CHARGING, S.PAID, S.INSTALLMENTS, S.PAST_DUE])
def test_open_purchases_grant_pro(status, stand_in):
    purchase = purchase_make()
    Purchase.objects.filter(pk=purchase.pk).update(status=status)
    assert entitlements_for_user(user=purchase.user).plan == "pro"


@pytest.mark.parametrize("status", [S.SUSPENDED, S.CANCELED, S.REFUNDED])
def test_closed_purchases_fall_back_to_free(status, stand_in):
    purchase = purchase_make()
    Purchase.objects.filter(pk=purchase.pk).update(status=status)
    entitlements = entitlements_for_user(user=purchase.user)
    assert entitlements.plan == "free" and entitlements.upgrade.plan == "pro"


def test_a_second_purchase_gets_no_grace_and_is_charged_once(stand_in):
    first = purchase_make()
    purchase_cancel(purchase=first)
    offer = offer_make()

    second = purchase_create(user=first.user, offer=offer, terms_accepted=True, terms_version=offer.terms_version)
    assert second.grace_ends_at <= clock.now()  # due at once (a charge task is also queued as it commits)

    # The queued charge (run by a worker, when one is up) and beat ticks race for it; the ledger's claim
    # makes it one charge.
    charge_due_run()
    charge_due_run()
    wait_for(lambda: Purchase.objects.get(pk=second.pk).status != S.CHARGING, timeout=60,
             what="the charge to settle")
    second.refresh_from_db()
    assert second.status == S.PAID
    [attempt] = second.attempts.all()
    assert attempt.amount_cents == 199900
    assert [pi["amount"] for pi in stand_in.payment_intents()] == [199900]


def test_the_first_purchase_still_gets_its_grace(stand_in):
    purchase = purchase_make()
    assert purchase.grace_ends_at - clock.now() > timedelta(hours=23)
    charge_due_run()
    assert stand_in.payment_intents() == []
