"""Billing emails: receipt, grace reminder, failure notice, authentication needed, fallback, suspension.

Sent after the transaction that caused them commits, so a rolled-back charge never mails anyone.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from billing.models import ChargeAttempt, Purchase

logger = logging.getLogger(__name__)

SUBJECTS = {
    "receipt": "Receipt: your {offer} payment",
    "reminder": "Your {offer} card will be charged in 2 hours",
    "failure": "A {offer} payment did not go through",
    "authentication_needed": "Please confirm your {offer} payment",
    "fallback": "We could not charge the full {offer} price: paying in installments",
    "suspended": "{offer} is paused until the amount due is paid",
}


def on_commit_send(kind: str, *, attempt: ChargeAttempt | None = None, purchase: Purchase | None = None) -> None:
    purchase_id = purchase.pk if purchase else attempt.purchase_id
    attempt_id = attempt.pk if attempt else None
    transaction.on_commit(lambda: billing_email_send(kind=kind, purchase_id=purchase_id, attempt_id=attempt_id))


def billing_email_send(*, kind: str, purchase_id: int, attempt_id: int | None = None) -> None:
    purchase = Purchase.objects.select_related("user", "offer").get(pk=purchase_id)
    attempt = ChargeAttempt.objects.filter(pk=attempt_id).first() if attempt_id else None
    base = settings.PARLEY_BASE_URL.rstrip("/")
    context = {
        "purchase": purchase, "attempt": attempt, "user": purchase.user, "offer": purchase.offer,
        "billing_url": base + reverse("billing:overview"),
        "card_url": base + reverse("billing:card"),
        "authenticate_url": base + reverse("billing:authenticate", args=[attempt.pk]) if attempt else "",
        "amount": f"${attempt.amount_cents / 100:,.2f}" if attempt else f"${purchase.amount_cents / 100:,.2f}",
    }
    subject = f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{SUBJECTS[kind].format(offer=purchase.offer.name)}"
    body = render_to_string(f"billing/email/{kind}.txt", context)
    try:
        send_mail(subject, body, None, [purchase.user.email])
    except OSError:
        # Mail trouble must not undo a recorded charge; the billing page shows the same facts.
        logger.exception("could not send the %s email for purchase %s", kind, purchase_id)
