"""Billing's hooks into dj-stripe's webhook processing (dj-stripe has verified the signature by now)."""

from __future__ import annotations

from djstripe import event_handlers
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS


def _payment_intent_event(sender, event, **kwargs) -> None:
    from billing.services import webhook_payment_intent_event

    webhook_payment_intent_event(event_id=event.id, event_type=event.type, payment_intent=event.data["object"])


def _subscription_event(sender, event, **kwargs) -> None:
    from billing.services import webhook_subscription_event

    webhook_subscription_event(event_id=event.id, event_type=event.type, subscription=event.data["object"])


def connect() -> None:
    # dj-stripe's generic handler re-fetches every PaymentIntent to mirror it, and a PaymentIntent
    # Stripe no longer has (or never had under this key) made that a 500, which Stripe retries for
    # days. Billing keeps its own ledger and never reads that mirror, so ours replaces it.
    for name in [name for name in WEBHOOK_SIGNALS if name.startswith("payment_intent.")]:
        WEBHOOK_SIGNALS[name].disconnect(event_handlers.handle_other_event, sender=Event)
    for name in ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.requires_action"):
        WEBHOOK_SIGNALS[name].connect(_payment_intent_event, dispatch_uid=f"billing:{name}")
    # dj-stripe's own handler re-fetches the subscription and raises when it can't (localstripe's
    # subscriptions don't sync); ours records the event and mirrors it from the payload instead.
    WEBHOOK_SIGNALS["customer.subscription.updated"].disconnect(
        event_handlers.handle_customer_subscription_event, sender=Event
    )
    WEBHOOK_SIGNALS["customer.subscription.updated"].connect(
        _subscription_event, dispatch_uid="billing:customer.subscription.updated"
    )
