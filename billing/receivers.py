"""Billing's hooks into dj-stripe's webhook processing (dj-stripe has verified the signature by now), and
writes to plans and offers that make the processes' copies of them old (billing.selectors.PLANS)."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from djstripe import event_handlers
from djstripe.models import Event
from djstripe.signals import WEBHOOK_SIGNALS


def _payment_intent_event(sender, event, **kwargs) -> None:
    from billing.services import webhook_payment_intent_event

    webhook_payment_intent_event(event_id=event.id, event_type=event.type, payment_intent=event.data["object"])


def _subscription_event(sender, event, **kwargs) -> None:
    from billing.services import webhook_subscription_event

    webhook_subscription_event(event_id=event.id, event_type=event.type, subscription=event.data["object"])


def _plans_changed(sender, **kwargs) -> None:
    from billing.selectors import PLANS

    PLANS.changed()


def connect() -> None:
    from billing.models import Offer, Plan

    for model in (Plan, Offer):
        post_save.connect(_plans_changed, sender=model, dispatch_uid=f"billing:plans:saved:{model.__name__}")
        post_delete.connect(_plans_changed, sender=model, dispatch_uid=f"billing:plans:deleted:{model.__name__}")
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
