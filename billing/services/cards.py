"""Card setup: a Stripe customer per user, a card attached explicitly and made the default.

Live and test mode collect the card with Stripe Elements and a SetupIntent, so card numbers never
touch Parley. Local mode (localstripe, where Stripe.js cannot load) takes Stripe's test card
numbers in a form and creates the PaymentMethod server-side; that path refuses every other mode.
"""

from __future__ import annotations

import logging
import re

import stripe
from django.db import transaction

from accounts.models import User
from billing import stripe_api
from billing.models import PaymentProfile
from common.errors import ApplicationError

logger = logging.getLogger(__name__)


def payment_profile_ensure(*, user: User) -> PaymentProfile:
    """The user's Stripe customer, created once (the idempotency key makes a retried create safe)."""
    profile = PaymentProfile.objects.filter(user=user).first()
    if profile is not None:
        return profile
    customer = stripe_api.customer_create(user_id=user.pk, email=user.email)
    with transaction.atomic():
        profile, _ = PaymentProfile.objects.get_or_create(user=user, defaults={"stripe_customer_id": customer["id"]})
    _djstripe_sync_customer(customer, user=user)
    return profile


def card_attach(*, user: User, payment_method_id: str) -> PaymentProfile:
    """Attach a PaymentMethod to the user's customer, make it the default, remember it."""
    profile = payment_profile_ensure(user=user)
    try:
        payment_method = stripe_api.payment_method_attach(
            payment_method_id=payment_method_id, customer_id=profile.stripe_customer_id
        )
    except stripe.CardError as exc:
        reason = (exc.user_message or "The card was declined").rstrip(".")
        raise ApplicationError(
            f"{reason}, so the card could not be saved. Please use another card or ask your bank.",
            code=exc.code or "card_declined", status=402,
        )
    except stripe.InvalidRequestError as exc:
        raise ApplicationError(
            f"The card could not be saved: {exc.user_message or 'Stripe refused it'}. Please check it and try again.",
            code="card_invalid",
        )
    customer = stripe_api.customer_set_default_payment_method(
        customer_id=profile.stripe_customer_id, payment_method_id=payment_method["id"]
    )
    card = payment_method.get("card") or {}
    PaymentProfile.objects.filter(pk=profile.pk).update(
        payment_method_id=payment_method["id"], card_brand=card.get("brand", ""), card_last4=card.get("last4", ""),
        card_exp_month=card.get("exp_month"), card_exp_year=card.get("exp_year"),
    )
    _djstripe_sync_customer(customer, user=user)
    _djstripe_sync_payment_method(payment_method)
    profile.refresh_from_db()
    return profile


_CARD_NUMBER = re.compile(r"^\d{16}$")


def card_attach_test_card(*, user: User, number: str, exp_month: int, exp_year: int, cvc: str) -> PaymentProfile:
    """Local mode only: make a PaymentMethod from a Stripe test card number, then attach it."""
    if stripe_api.billing_mode() != "local":
        raise ApplicationError(
            "Card numbers cannot be entered here outside local mode; use the secure card form.",
            code="local_only", status=403,
        )
    number = re.sub(r"[\s-]", "", number)
    if not _CARD_NUMBER.match(number):
        raise ApplicationError("Enter the 16 digits of the card number.", code="card_number")
    try:
        payment_method = stripe_api.payment_method_create_test_card(
            number=number, exp_month=exp_month, exp_year=exp_year, cvc=cvc
        )
    except stripe.InvalidRequestError as exc:
        raise ApplicationError(
            f"The card details were refused ({exc.user_message or 'invalid card'}); check the expiry date and CVC.",
            code="card_invalid",
        )
    return card_attach(user=user, payment_method_id=payment_method["id"])


def card_setup_start(*, user: User) -> str:
    """Live/test mode: a SetupIntent for Stripe Elements; returns its client secret."""
    profile = payment_profile_ensure(user=user)
    setup_intent = stripe_api.setup_intent_create(customer_id=profile.stripe_customer_id, user_id=user.pk)
    return setup_intent["client_secret"]


def card_setup_finish(*, user: User, setup_intent_id: str) -> PaymentProfile:
    """Live/test mode: after Elements confirmed the SetupIntent, attach its card explicitly."""
    profile = payment_profile_ensure(user=user)
    try:
        setup_intent = stripe_api.setup_intent_retrieve(setup_intent_id=setup_intent_id)
    except stripe.InvalidRequestError:
        raise ApplicationError("That card setup was not found; please enter the card again.", code="setup_unknown")
    if setup_intent.get("customer") != profile.stripe_customer_id:
        raise ApplicationError("That card setup belongs to someone else.", code="setup_not_yours", status=403)
    if setup_intent.get("status") != "succeeded" or not setup_intent.get("payment_method"):
        raise ApplicationError("The card was not confirmed; please enter it again.", code="setup_incomplete")
    payment_method = setup_intent["payment_method"]
    payment_method_id = payment_method["id"] if isinstance(payment_method, dict) else payment_method
    return card_attach(user=user, payment_method_id=payment_method_id)


def _djstripe_sync_customer(customer: dict, *, user: User) -> None:
    # dj-stripe mirrors Stripe for admin and reporting; Parley's own rows stay the source of truth,
    # so a failed mirror is logged rather than failing the customer's card setup.
    from djstripe.models import Customer

    try:
        with transaction.atomic():
            synced = Customer.sync_from_stripe_data(customer)
            if synced.subscriber_id != user.pk:
                Customer.objects.filter(pk=synced.pk).update(subscriber=user)
    except Exception:
        logger.warning("dj-stripe could not sync customer %s", customer.get("id"), exc_info=True)


def _djstripe_sync_payment_method(payment_method: dict) -> None:
    from djstripe.models import PaymentMethod

    try:
        with transaction.atomic():
            PaymentMethod.sync_from_stripe_data(payment_method)
    except Exception:
        logger.warning("dj-stripe could not sync payment method %s", payment_method.get("id"), exc_info=True)
