"""Stripe webhook handling, after dj-stripe verified the signature and stored the event.

Stripe delivers at least once and in any order, so each handler is keyed by the event id (a
replay finds its WebhookReceipt and stops) and acts on the PaymentIntent's state as Stripe has it
now, not on the event's copy: a late `payment_failed` can't undo a success, and a success that
arrives before the worker recorded its own result is applied once, by whoever comes first.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from billing import stripe_api
from billing.models import ChargeAttempt, WebhookReceipt
from billing.services.charging import charge_attempt_settle


def _receipt(*, event_id: str, event_type: str, object_id: str) -> WebhookReceipt | None:
    try:
        with transaction.atomic():
            return WebhookReceipt.objects.create(event_id=event_id, type=event_type, object_id=object_id)
    except IntegrityError:
        return None  # seen before


@transaction.atomic
def webhook_payment_intent_event(
    *, event_id: str, event_type: str, payment_intent: dict[str, Any]
) -> WebhookReceipt | None:
    receipt = _receipt(event_id=event_id, event_type=event_type, object_id=payment_intent.get("id", ""))
    if receipt is None:
        return None
    metadata = payment_intent.get("metadata") or {}
    attempt = None
    if (metadata.get("parley_attempt_id") or "").isdigit():
        attempt = ChargeAttempt.objects.filter(pk=int(metadata["parley_attempt_id"])).first()
    if attempt is None:
        attempt = ChargeAttempt.objects.filter(payment_intent_id=payment_intent.get("id", "")).first()
    if attempt is None:
        receipt.note = "No Parley charge matches this PaymentIntent."
        receipt.save(update_fields=["note"])
        return receipt
    current = stripe_api.payment_intent_retrieve(payment_intent_id=payment_intent["id"])
    before = attempt.status
    attempt = charge_attempt_settle(attempt_id=attempt.pk, payment_intent=current, settled_by="webhook")
    receipt.attempt = attempt
    receipt.note = f"attempt {before} -> {attempt.status}" if before != attempt.status else "already recorded"
    receipt.save(update_fields=["attempt", "note"])
    return receipt


@transaction.atomic
def webhook_subscription_event(
    *, event_id: str, event_type: str, subscription: dict[str, Any]
) -> WebhookReceipt | None:
    """Parley sells no subscriptions; a subscription change made in Stripe is recorded and mirrored."""
    from djstripe.models import Subscription

    receipt = _receipt(event_id=event_id, event_type=event_type, object_id=subscription.get("id", ""))
    if receipt is None:
        return None
    try:
        with transaction.atomic():
            Subscription.sync_from_stripe_data(subscription)
        receipt.note = f"synced; status {subscription.get('status', '?')}"
    except Exception as exc:  # noqa: BLE001 - the record is kept even when the mirror can't be updated
        receipt.note = f"recorded; dj-stripe could not sync it: {exc}"[:500]
    receipt.save(update_fields=["note"])
    return receipt
