"""Billing's writes. Views, tasks, admin actions and commands call these; none writes rows itself."""

from __future__ import annotations

from billing.services.cards import (
    card_attach,
    card_attach_test_card,
    card_setup_finish,
    card_setup_start,
    payment_profile_ensure,
)
from billing.services.catalog import catalog_install
from billing.services.charging import (
    charge_attempt_authenticate_local,
    charge_attempt_refresh,
    charge_attempt_send,
    charge_attempt_settle,
    charge_attempts_reconcile,
    charge_due_claim,
    charge_due_run,
    purchase_pay_due_now,
    reminders_send_due,
)
from billing.services.operations import (
    purchase_cadence_change,
    purchase_cancel_by_staff,
    purchase_refund,
    purchase_retry_now,
)
from billing.services.purchases import (
    InvalidTransition,
    purchase_cancel,
    purchase_create,
    purchase_transition,
)
from billing.services.stripe_setup import stripe_local_setup
from billing.services.webhooks import webhook_payment_intent_event, webhook_subscription_event

__all__ = [
    "InvalidTransition",
    "card_attach",
    "card_attach_test_card",
    "card_setup_finish",
    "card_setup_start",
    "catalog_install",
    "charge_attempt_authenticate_local",
    "charge_attempt_refresh",
    "charge_attempt_send",
    "charge_attempt_settle",
    "charge_attempts_reconcile",
    "charge_due_claim",
    "charge_due_run",
    "payment_profile_ensure",
    "purchase_cadence_change",
    "purchase_cancel",
    "purchase_cancel_by_staff",
    "purchase_create",
    "purchase_pay_due_now",
    "purchase_refund",
    "purchase_retry_now",
    "purchase_transition",
    "reminders_send_due",
    "stripe_local_setup",
    "webhook_payment_intent_event",
    "webhook_subscription_event",
]
