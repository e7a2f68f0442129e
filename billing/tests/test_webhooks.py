"""Webhooks through dj-stripe's endpoint: signatures, replays and reordering, with real stand-in events."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe
from django.conf import settings
from django.urls import reverse

from billing import stripe_api
from billing.models import ChargeAttempt, Purchase, WebhookReceipt
from billing.services import charge_due_claim, charge_due_run
from billing.tests.factories import VISA, purchase_make

pytestmark = pytest.mark.django_db

A = ChargeAttempt.Status


def _sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def _post(client, endpoint, event: dict, *, secret: str | None = None, signature: str | None = None):
    payload = json.dumps(event)
    headers = {}
    if signature is not None or secret is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = signature or _sign(payload, secret)
    url = reverse("djstripe:djstripe_webhook_by_uuid", args=[endpoint.djstripe_uuid])
    return client.post(url, data=payload, content_type="application/json", **headers)


def _events(event_type: str) -> list[dict]:
    return [e.to_dict() for e in stripe.Event.list(api_key=settings.STRIPE_SECRET_KEY, type=event_type, limit=100)]


def _interrupted_charge(card: str = VISA) -> ChargeAttempt:
    """A charge whose worker died right after Stripe confirmed it: the attempt has its PaymentIntent's
    id (stored before confirming) but the ledger still says `sending`."""
    purchase = purchase_make(card=card, grace_over=True)
    [attempt_id] = charge_due_claim()
    attempt = ChargeAttempt.objects.get(pk=attempt_id)
    profile = purchase.user.payment_profile
    payment_intent = stripe_api.payment_intent_create(
        amount_cents=attempt.amount_cents, currency="usd", customer_id=profile.stripe_customer_id,
        payment_method_id=profile.payment_method_id, metadata={"parley_attempt_id": str(attempt.pk)},
        idempotency_key=attempt.idempotency_key + ":create",
    )
    ChargeAttempt.objects.filter(pk=attempt.pk).update(payment_intent_id=payment_intent["id"])
    stripe_api.payment_intent_confirm(payment_intent_id=payment_intent["id"], off_session=True,
                                      idempotency_key=attempt.idempotency_key + ":confirm")
    return attempt


def test_unsigned_webhook_is_refused_and_changes_nothing(client, djstripe_local):
    attempt = _interrupted_charge()
    [event] = _events("payment_intent.succeeded")

    response = _post(client, djstripe_local, event)

    assert response.status_code == 400
    attempt.refresh_from_db()
    assert attempt.status == A.SENDING
    assert not WebhookReceipt.objects.exists()


def test_forged_webhook_is_refused_and_changes_nothing(client, djstripe_local):
    attempt = _interrupted_charge()
    [event] = _events("payment_intent.succeeded")

    response = _post(client, djstripe_local, event, secret="whsec_not_the_real_one")

    assert response.status_code == 400
    attempt.refresh_from_db()
    assert attempt.status == A.SENDING
    assert attempt.purchase.status == Purchase.Status.CHARGING
    assert not WebhookReceipt.objects.exists()


def test_debug_secret_override_header_is_refused(client, djstripe_local):
    [_] = [_interrupted_charge()]
    [event] = _events("payment_intent.succeeded")
    payload = json.dumps(event)
    url = reverse("djstripe:djstripe_webhook_by_uuid", args=[djstripe_local.djstripe_uuid])

    response = client.post(url, data=payload, content_type="application/json",
                           HTTP_STRIPE_SIGNATURE=_sign(payload, "whsec_mine"),
                           HTTP_X_DJSTRIPE_WEBHOOK_SECRET="whsec_mine")

    assert response.status_code == 400
    assert not WebhookReceipt.objects.exists()


def test_signed_success_settles_an_interrupted_charge_and_a_replay_is_a_no_op(client, djstripe_local, stand_in):
    attempt = _interrupted_charge()
    [event] = _events("payment_intent.succeeded")

    first = _post(client, djstripe_local, event, secret=djstripe_local.secret)
    replay = _post(client, djstripe_local, event, secret=djstripe_local.secret)

    assert first.status_code == 200 and replay.status_code == 200
    attempt.refresh_from_db()
    assert (attempt.status, attempt.settled_by) == (A.SUCCEEDED, "webhook")
    assert attempt.purchase.status == Purchase.Status.PAID
    assert WebhookReceipt.objects.filter(event_id=event["id"]).count() == 1
    # The worker's own run afterwards (reconciling the same attempt) charges nothing more.
    charge_due_run()
    assert [pi["amount"] for pi in stand_in.payment_intents()] == [199900]
    assert ChargeAttempt.objects.count() == 1


def test_a_late_failure_event_cannot_undo_a_success(client, djstripe_local, stand_in):
    attempt = _interrupted_charge()
    [succeeded] = _events("payment_intent.succeeded")
    # An older, stale copy of the same PaymentIntent reporting a failure, delivered after the success.
    stale = json.loads(json.dumps(succeeded))
    stale.update(id="evt_stale_failure_1", type="payment_intent.payment_failed")
    stale["data"]["object"]["status"] = "requires_payment_method"

    _post(client, djstripe_local, succeeded, secret=djstripe_local.secret)
    late = _post(client, djstripe_local, stale, secret=djstripe_local.secret)

    assert late.status_code == 200
    attempt.refresh_from_db()
    assert attempt.status == A.SUCCEEDED
    assert attempt.purchase.status == Purchase.Status.PAID
    assert len(stand_in.succeeded()) == 1


def test_failure_event_before_the_worker_records_moves_the_plan_once(client, djstripe_local, stand_in):
    from billing.tests.factories import DECLINE_ON_CHARGE

    attempt = _interrupted_charge(card=DECLINE_ON_CHARGE)
    [failed] = _events("payment_intent.payment_failed")

    _post(client, djstripe_local, failed, secret=djstripe_local.secret)
    _post(client, djstripe_local, failed, secret=djstripe_local.secret)  # duplicate delivery

    attempt.refresh_from_db()
    assert (attempt.status, attempt.decline_code) == (A.FAILED, "card_declined")
    purchase = attempt.purchase
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.INSTALLMENTS
    assert purchase.installments.count() == 100


def test_subscription_updated_is_recorded(client, djstripe_local):
    event = {
        "id": "evt_sub_updated_1", "object": "event", "type": "customer.subscription.updated", "livemode": False,
        "api_version": "2017-08-15", "created": int(time.time()), "request": None,
        "data": {"object": {"id": "sub_123", "object": "subscription", "status": "active", "customer": "cus_x"}},
    }

    response = _post(client, djstripe_local, event, secret=djstripe_local.secret)
    again = _post(client, djstripe_local, event, secret=djstripe_local.secret)

    assert response.status_code == 200 and again.status_code == 200
    [receipt] = WebhookReceipt.objects.filter(type="customer.subscription.updated")
    assert receipt.object_id == "sub_123"


def _payment_intent_event(event_id: str, payment_intent: dict, event_type: str = "payment_intent.succeeded") -> dict:
    return {
        "id": event_id, "object": "event", "type": event_type, "livemode": False, "api_version": "2017-08-15",
        "created": int(time.time()), "request": None, "data": {"object": payment_intent},
    }


def test_a_signed_event_for_an_unknown_payment_intent_is_a_logged_no_op(client, djstripe_local, stand_in, caplog):
    """Stripe retries anything but a 2xx for days; a PaymentIntent we never made is acknowledged."""
    event = _payment_intent_event("evt_unknown_pi_1", {
        "id": "pi_not_ours_123", "object": "payment_intent", "amount": 500, "currency": "usd",
        "status": "succeeded", "customer": None, "metadata": {}})

    response = _post(client, djstripe_local, event, secret=djstripe_local.secret)
    again = _post(client, djstripe_local, event, secret=djstripe_local.secret)

    assert response.status_code == 200 and again.status_code == 200
    [receipt] = WebhookReceipt.objects.filter(event_id="evt_unknown_pi_1")
    assert receipt.attempt is None and "No Parley charge" in receipt.note
    assert "pi_not_ours_123" in caplog.text
    assert not ChargeAttempt.objects.exists()


def test_the_attempt_is_found_by_our_stored_payment_intent_not_by_metadata(client, djstripe_local, stand_in):
    attempt = _interrupted_charge()
    profile = attempt.purchase.user.payment_profile
    # Another PaymentIntent on the same account that claims, in its metadata, to be this attempt.
    other = stripe_api.payment_intent_create(
        amount_cents=100, currency="usd", customer_id=profile.stripe_customer_id,
        payment_method_id=profile.payment_method_id, metadata={"parley_attempt_id": str(attempt.pk)},
        idempotency_key="someone-else-1")
    stripe_api.payment_intent_confirm(payment_intent_id=other["id"], off_session=True, idempotency_key="someone-else-2")
    event = _payment_intent_event("evt_impostor_1", stripe_api.payment_intent_retrieve(payment_intent_id=other["id"]))

    response = _post(client, djstripe_local, event, secret=djstripe_local.secret)

    assert response.status_code == 200
    attempt.refresh_from_db()
    assert attempt.status == A.SENDING and attempt.purchase.status == Purchase.Status.CHARGING
    [receipt] = WebhookReceipt.objects.filter(event_id="evt_impostor_1")
    assert receipt.attempt is None


def test_a_signed_event_about_any_object_stripe_does_not_have_is_acknowledged(client, djstripe_local, stand_in):
    event = _payment_intent_event("evt_unknown_seti_1", {"id": "seti_not_ours_123", "object": "setup_intent",
                                                         "status": "succeeded", "customer": None},
                                  event_type="setup_intent.succeeded")

    response = _post(client, djstripe_local, event, secret=djstripe_local.secret)

    assert response.status_code == 200
