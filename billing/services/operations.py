"""Staff operations from admin: refund, cancel a plan, retry now, change the installment cadence."""

from __future__ import annotations

from datetime import timedelta

import stripe
from django.db import transaction
from django.db.models import F

from accounts.models import User
from billing import clock, stripe_api
from billing.models import ChargeAttempt, Installment, Purchase, Refund
from billing.services.purchases import purchase_transition
from common.errors import ApplicationError
from onboarding.services import Event, event_record

S = Purchase.Status
I = Installment.Status  # noqa: E741


def purchase_refund(*, purchase: Purchase, amount_cents: int | None, by: User | None, reason: str = "") -> list[Refund]:
    """Refund `amount_cents` (everything refundable when None) through Stripe, newest payments first."""
    attempts = list(
        ChargeAttempt.objects.filter(purchase=purchase, status=ChargeAttempt.Status.SUCCEEDED)
        .filter(refunded_cents__lt=F("amount_cents")).order_by("-sent_at", "-id")
    )
    refundable = sum(a.amount_cents - a.refunded_cents for a in attempts)
    if refundable == 0:
        raise ApplicationError("Nothing has been collected on this purchase, so there is nothing to refund.",
                               code="nothing_to_refund")
    wanted = refundable if amount_cents is None else amount_cents
    if wanted <= 0 or wanted > refundable:
        raise ApplicationError(f"Refund between $0.01 and ${refundable / 100:,.2f}.", code="refund_amount")
    refunds: list[Refund] = []
    remaining = wanted
    for attempt in attempts:
        if remaining == 0:
            break
        portion = min(remaining, attempt.amount_cents - attempt.refunded_cents)
        # The key names the ledger state it refunds from, so a double-clicked action replays, not repeats.
        key = f"parley-refund-a{attempt.pk}-from{attempt.refunded_cents}-{portion}"
        try:
            refund = stripe_api.refund_create(
                payment_intent_id=attempt.payment_intent_id, amount_cents=portion, idempotency_key=key
            )
        except stripe.StripeError as exc:
            raise ApplicationError(f"Stripe refused the refund of attempt {attempt.pk}: {exc.user_message or exc}",
                                   code="refund_failed")
        with transaction.atomic():
            row, created = Refund.objects.get_or_create(
                idempotency_key=key,
                defaults={"attempt": attempt, "amount_cents": portion, "stripe_refund_id": refund["id"],
                          "created_by": by, "reason": reason[:300]},
            )
            if created:
                ChargeAttempt.objects.filter(pk=attempt.pk).update(refunded_cents=F("refunded_cents") + portion)
                Purchase.objects.filter(pk=purchase.pk).update(refunded_cents=F("refunded_cents") + portion)
        refunds.append(row)
        remaining -= portion
    purchase.refresh_from_db()
    if wanted == refundable and purchase.status != S.REFUNDED:
        with transaction.atomic():
            purchase_transition(purchase_id=purchase.pk, from_statuses=(purchase.status,), to=S.REFUNDED,
                                refunded_at=clock.now())
            purchase.installments.filter(status__in=(I.SCHEDULED, I.FAILED)).update(status=I.CANCELED)
        purchase.refresh_from_db()
    return refunds


@transaction.atomic
def purchase_cancel_by_staff(*, purchase: Purchase) -> Purchase:
    """End a plan: in grace it costs nothing; on installments the remaining ones are dropped."""
    allowed = (S.GRACE, S.INSTALLMENTS, S.PAST_DUE, S.SUSPENDED)
    if purchase.status not in allowed:
        raise ApplicationError(
            f"A {purchase.get_status_display().lower()} purchase cannot be canceled; refund it instead.",
            code="cannot_cancel", status=409,
        )
    purchase_transition(purchase_id=purchase.pk, from_statuses=allowed, to=S.CANCELED, canceled_at=clock.now())
    purchase.installments.filter(status__in=(I.SCHEDULED, I.FAILED)).update(status=I.CANCELED)
    # The customer's event (their consent decides), though staff acted: no staff request is passed.
    event_record(user_id=purchase.user_id, name=Event.CANCELED,
                 data={"purchase": purchase.pk, "by": "staff"})
    purchase.refresh_from_db()
    return purchase


@transaction.atomic
def purchase_retry_now(*, purchase: Purchase) -> int:
    """Make the missed installments due now (re-arming used-up ones); the next charge run tries them."""
    if purchase.status not in (S.INSTALLMENTS, S.PAST_DUE, S.SUSPENDED):
        raise ApplicationError("Only a purchase paying in installments has anything to retry.", code="nothing_due")
    now = clock.now()
    count = purchase.installments.filter(status__in=(I.SCHEDULED, I.FAILED), due_at__lte=now).update(
        status=I.SCHEDULED, next_attempt_at=now
    )
    if purchase.status == S.SUSPENDED and count:
        # Back to past due so the charge run picks it up; a success then restores access.
        Purchase.objects.filter(pk=purchase.pk, status=S.SUSPENDED).update(status=S.PAST_DUE, updated_at=now)
    return count


@transaction.atomic
def purchase_cadence_change(*, purchase: Purchase, interval_days: int) -> Purchase:
    """Respace the installments not yet due, `interval_days` apart from the last one that is."""
    if not 1 <= interval_days <= 90:
        raise ApplicationError("The cadence must be between 1 and 90 days.", code="cadence_range")
    now = clock.now()
    Purchase.objects.filter(pk=purchase.pk).update(installment_interval_days=interval_days, updated_at=now)
    future = list(purchase.installments.filter(status=I.SCHEDULED, due_at__gt=now, failures=0).order_by("number"))
    if future:
        anchor = purchase.installments.filter(number__lt=future[0].number).order_by("-number").first()
        start = anchor.due_at if anchor else future[0].due_at - timedelta(days=interval_days)
        for offset, installment in enumerate(future, start=1):
            due = max(start + timedelta(days=interval_days * offset), now)
            Installment.objects.filter(pk=installment.pk).update(due_at=due, next_attempt_at=due, updated_at=now)
    purchase.refresh_from_db()
    return purchase
