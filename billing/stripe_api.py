"""The only module that calls Stripe. Every call that creates something carries an idempotency key.

In local mode the same calls go to localstripe (billing/localstripe_server.py) on loopback.
"""

from __future__ import annotations

from typing import Any

import requests
import stripe
from django.conf import settings

LIVE_API_BASE = "https://api.stripe.com"


def stripe_configure() -> None:
    """Point stripe-python (and so dj-stripe) at Stripe or at the local stand-in."""
    stripe.api_base = settings.STRIPE_API_BASE if settings.BILLING_MODE == "local" else LIVE_API_BASE
    # Retries reuse the request's idempotency key, so a retried POST never runs twice.
    stripe.max_network_retries = 2


def billing_mode() -> str:
    return settings.BILLING_MODE


def _key() -> str:
    return settings.STRIPE_SECRET_KEY


def as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def customer_create(*, user_id: int, email: str) -> dict[str, Any]:
    customer = stripe.Customer.create(
        api_key=_key(), email=email, metadata={"parley_user_id": str(user_id), "djstripe_subscriber": str(user_id)},
        idempotency_key=f"parley-customer-{user_id}",
    )
    return as_dict(customer)


def customer_retrieve(*, customer_id: str) -> dict[str, Any]:
    return as_dict(stripe.Customer.retrieve(customer_id, api_key=_key()))


def customer_set_default_payment_method(*, customer_id: str, payment_method_id: str) -> dict[str, Any]:
    customer = stripe.Customer.modify(
        customer_id, api_key=_key(), invoice_settings={"default_payment_method": payment_method_id}
    )
    return as_dict(customer)


def payment_method_create_test_card(*, number: str, exp_month: int, exp_year: int, cvc: str) -> dict[str, Any]:
    """Local mode only: raw card numbers must never reach the server against real Stripe."""
    if billing_mode() != "local":
        raise RuntimeError("Card numbers may only be sent from the server to the local Stripe stand-in.")
    payment_method = stripe.PaymentMethod.create(
        api_key=_key(), type="card", card={"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}
    )
    return as_dict(payment_method)


def payment_method_retrieve(*, payment_method_id: str) -> dict[str, Any]:
    return as_dict(stripe.PaymentMethod.retrieve(payment_method_id, api_key=_key()))


def payment_method_attach(*, payment_method_id: str, customer_id: str) -> dict[str, Any]:
    return as_dict(stripe.PaymentMethod.attach(payment_method_id, customer=customer_id, api_key=_key()))


def setup_intent_create(*, customer_id: str, user_id: int) -> dict[str, Any]:
    setup_intent = stripe.SetupIntent.create(
        api_key=_key(), customer=customer_id, usage="off_session", payment_method_types=["card"],
        metadata={"parley_user_id": str(user_id)},
    )
    return as_dict(setup_intent)


def setup_intent_retrieve(*, setup_intent_id: str) -> dict[str, Any]:
    return as_dict(stripe.SetupIntent.retrieve(setup_intent_id, api_key=_key()))


def payment_intent_create(
    *, amount_cents: int, currency: str, customer_id: str, payment_method_id: str, metadata: dict[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    """Create, not confirm: the id is stored in the ledger before any money can move."""
    payment_intent = stripe.PaymentIntent.create(
        api_key=_key(), amount=amount_cents, currency=currency, customer=customer_id,
        payment_method=payment_method_id, payment_method_types=["card"], metadata=metadata,
        idempotency_key=idempotency_key,
    )
    return as_dict(payment_intent)


def payment_intent_confirm(*, payment_intent_id: str, off_session: bool, idempotency_key: str) -> dict[str, Any]:
    """Confirm (this is what charges). A decline comes back as the PaymentIntent's state, not an error."""
    params: dict[str, Any] = {"off_session": True} if off_session else {}
    try:
        payment_intent = stripe.PaymentIntent.confirm(
            payment_intent_id, api_key=_key(), idempotency_key=idempotency_key, **params
        )
    except stripe.CardError:
        # The card was declined; the PaymentIntent records why (last_payment_error).
        return payment_intent_retrieve(payment_intent_id=payment_intent_id)
    return as_dict(payment_intent)


def payment_intent_retrieve(*, payment_intent_id: str) -> dict[str, Any]:
    return as_dict(stripe.PaymentIntent.retrieve(payment_intent_id, api_key=_key()))


def payment_intent_cancel(*, payment_intent_id: str) -> dict[str, Any]:
    return as_dict(stripe.PaymentIntent.cancel(payment_intent_id, api_key=_key()))


def payment_intent_authenticate_locally(*, payment_intent_id: str, client_secret: str) -> dict[str, Any]:
    """Local mode only: stand in for the bank's 3-D Secure page (what localstripe's Stripe.js does)."""
    if billing_mode() != "local":
        raise RuntimeError("Simulated authentication exists only against the local Stripe stand-in.")
    response = requests.post(
        f"{settings.STRIPE_API_BASE}/v1/payment_intents/{payment_intent_id}/_authenticate",
        data={"client_secret": client_secret, "success": "true"}, headers={"Authorization": f"Bearer {_key()}"},
        timeout=30,
    )
    response.raise_for_status()
    return payment_intent_retrieve(payment_intent_id=payment_intent_id)


def refund_create(*, payment_intent_id: str, amount_cents: int, idempotency_key: str) -> dict[str, Any]:
    refund = stripe.Refund.create(
        api_key=_key(), payment_intent=payment_intent_id, amount=amount_cents, idempotency_key=idempotency_key
    )
    return as_dict(refund)


def charge_retrieve(*, charge_id: str) -> dict[str, Any]:
    return as_dict(stripe.Charge.retrieve(charge_id, api_key=_key()))
