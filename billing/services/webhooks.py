"""Stripe webhook handling, after dj-stripe verified the signature and stored the event.

Stripe delivers at least once and in any order, so each handler is keyed by the event id (a
replay finds its WebhookReceipt and stops) and acts on the PaymentIntent's state as Stripe has it
now, not on the event's copy: a late `payment_failed` can't undo a success, and a success that
arrives before the worker recorded its own result is applied once, by whoever comes first.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from billing import stripe_api
from billing.models import ChargeAttempt, WebhookReceipt
from billing.services.charging import charge_attempt_settle

logger = logging.getLogger(__name__)


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
    # Matched by the PaymentIntent id our own ledger stored, never by the event's metadata: anyone
    # who can create a PaymentIntent on the account (a dashboard user, another integration) can
    # write metadata naming any attempt. A PaymentIntent we never stored is acknowledged (Stripe
    # retries anything else for days) and changes nothing; a worker that crashed before storing
    # its id resumes from its own idempotency key.
    payment_intent_id = payment_intent.get("id") or ""
    attempt = ChargeAttempt.objects.filter(payment_intent_id=payment_intent_id).first() if payment_intent_id else None
    if attempt is None:
        logger.info("Stripe event %s (%s) is about PaymentIntent %s, which no Parley charge made; ignored",
                    event_id, event_type, payment_intent_id or "(none)")
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
