"""Charging: claim what is due, write the ledger row, call Stripe, record the outcome, move state.

The order is what makes it exactly-once:
1. claim (select_for_update skip_locked + guarded UPDATE) and insert a ChargeAttempt `sending`
   with a key derived from the ledger, in one transaction;
2. create the PaymentIntent (no money moves) and store its id;
3. confirm it (this charges; its own key, so a repeat replays instead of charging again);
4. settle: record the outcome on the attempt, then move the installment and purchase.
A crash anywhere leaves an attempt in `sending`; the reconciler resumes it from step 2 or 3 using
the stored PaymentIntent (or a replay of the same create key), never with a fresh charge.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Q

from billing import clock, stripe_api
from billing.faults import crash_point
from billing.models import ChargeAttempt, Installment, PaymentProfile, Purchase
from billing.services import emails
from billing.services.purchases import purchase_transition
from common.errors import ApplicationError
from onboarding.services import Event, event_record

logger = logging.getLogger(__name__)

A = ChargeAttempt.Status
S = Purchase.Status
I = Installment.Status  # noqa: E741 - mirrors A and S

# An attempt still `sending` this long after it was written belongs to a worker that died.
RECONCILE_AFTER = timedelta(minutes=2)
# Installment states in which a purchase can collect money.
COLLECTING = (S.INSTALLMENTS, S.PAST_DUE, S.SUSPENDED)


def _installment_key(installment: Installment) -> str:
    return f"parley-p{installment.purchase_id}-i{installment.number}-t{installment.failures + 1}"


def _full_key(purchase: Purchase) -> str:
    return f"parley-p{purchase.pk}-full"


# --------------------------------------------------------------------------- claim


@transaction.atomic
def charge_due_claim(*, limit: int = 50) -> list[int]:
    """Claim due purchases and installments for this worker; returns the ChargeAttempt ids to send."""
    now = clock.now()
    attempt_ids: list[int] = []
    purchases = list(
        Purchase.objects.select_for_update(skip_locked=True)
        .filter(status=S.GRACE, grace_ends_at__lte=now)
        .order_by("grace_ends_at", "id")[:limit]
    )
    for purchase in purchases:
        # Guarded even under the row lock: a customer's cancel commits before we locked the row.
        if Purchase.objects.filter(pk=purchase.pk, status=S.GRACE).update(status=S.CHARGING, updated_at=now) != 1:
            continue
        attempt = ChargeAttempt.objects.create(
            purchase=purchase, kind=ChargeAttempt.Kind.FULL, amount_cents=purchase.amount_cents,
            currency=purchase.currency, idempotency_key=_full_key(purchase), sent_at=now,
        )
        attempt_ids.append(attempt.pk)
    room = limit - len(attempt_ids)
    if room > 0:
        installments = list(
            Installment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=I.SCHEDULED, next_attempt_at__lte=now, purchase__status__in=(S.INSTALLMENTS, S.PAST_DUE))
            .select_related("purchase")
            .order_by("next_attempt_at", "id")[:room]
        )
        for installment in installments:
            attempt_ids.append(_installment_claim(installment=installment, now=now, on_session=False))
    return attempt_ids


def _installment_claim(*, installment: Installment, now, on_session: bool) -> int:
    updated = Installment.objects.filter(pk=installment.pk, status__in=(I.SCHEDULED, I.FAILED)).update(
        status=I.CHARGING, updated_at=now
    )
    if updated != 1:
        raise ApplicationError("That installment is already being charged.", code="busy", status=409)
    attempt = ChargeAttempt.objects.create(
        purchase=installment.purchase, installment=installment, kind=ChargeAttempt.Kind.INSTALLMENT,
        amount_cents=installment.amount_cents, currency=installment.purchase.currency,
        idempotency_key=_installment_key(installment), sent_at=now, on_session=on_session,
    )
    return attempt.pk


# --------------------------------------------------------------------------- send


def charge_attempt_send(*, attempt_id: int, settled_by: str = "worker") -> ChargeAttempt:
    """Drive one attempt to Stripe and settle it. Safe to call again for the same attempt."""
    attempt = ChargeAttempt.objects.select_related("purchase").get(pk=attempt_id)
    if attempt.status != A.SENDING:
        return attempt
    try:
        if attempt.payment_intent_id:
            payment_intent = stripe_api.payment_intent_retrieve(payment_intent_id=attempt.payment_intent_id)
        else:
            profile = PaymentProfile.objects.filter(user_id=attempt.purchase.user_id).first()
            if profile is None or not profile.has_card:
                return charge_attempt_settle(attempt_id=attempt.pk, payment_intent=_no_card(), settled_by=settled_by)
            payment_intent = stripe_api.payment_intent_create(
                amount_cents=attempt.amount_cents, currency=attempt.currency,
                customer_id=profile.stripe_customer_id, payment_method_id=profile.payment_method_id,
                metadata={"parley_attempt_id": str(attempt.pk), "parley_purchase_id": str(attempt.purchase_id)},
                idempotency_key=attempt.idempotency_key + ":create",
            )
            # Stored (and committed) before confirming, so a crash from here on is resumed from it.
            ChargeAttempt.objects.filter(pk=attempt.pk, payment_intent_id="").update(
                payment_intent_id=payment_intent["id"]
            )
            crash_point("after_create")
        if payment_intent["status"] == "requires_confirmation":
            payment_intent = stripe_api.payment_intent_confirm(
                payment_intent_id=payment_intent["id"], off_session=not attempt.on_session,
                idempotency_key=attempt.idempotency_key + ":confirm",
            )
        crash_point("after_confirm")
    except stripe.InvalidRequestError as exc:
        # Stripe refused the request itself (a detached card, a deleted customer): no money moved.
        message = getattr(exc, "user_message", None) or str(exc)
        failed = {"status": "requires_payment_method", "last_payment_error": {"code": exc.code or "invalid_request",
                                                                             "message": message}}
        return charge_attempt_settle(attempt_id=attempt.pk, payment_intent=failed, settled_by=settled_by)
    except stripe.StripeError:
        # Network trouble or a Stripe outage: the outcome is unknown, so the attempt stays `sending`
        # and the reconciler asks Stripe again later. Nothing is re-charged blindly.
        logger.warning("charge attempt %s: Stripe unreachable; left for reconciliation", attempt.pk, exc_info=True)
        return attempt
    return charge_attempt_settle(attempt_id=attempt.pk, payment_intent=payment_intent, settled_by=settled_by)


def _no_card() -> dict[str, Any]:
    return {"status": "requires_payment_method",
            "last_payment_error": {"code": "no_card", "message": "There is no card on file."}}


# --------------------------------------------------------------------------- settle


def _outcome(payment_intent: dict[str, Any]) -> tuple[str | None, str, str]:
    status = payment_intent.get("status")
    if status == "succeeded":
        return A.SUCCEEDED, "", ""
    if status == "requires_action":
        return A.REQUIRES_ACTION, "authentication_required", "Your bank asks you to confirm this payment."
    if status in ("requires_payment_method", "canceled"):
        error = payment_intent.get("last_payment_error") or {}
        code = error.get("decline_code") or error.get("code") or ("canceled" if status == "canceled" else "declined")
        return A.FAILED, code, error.get("message") or "The payment did not go through."
    return None, "", ""  # processing / requires_confirmation: not decided yet


@transaction.atomic
def charge_attempt_settle(*, attempt_id: int, payment_intent: dict[str, Any], settled_by: str) -> ChargeAttempt:
    """Record a PaymentIntent's outcome on its attempt and apply it once, whoever reports it first."""
    attempt = ChargeAttempt.objects.select_for_update().select_related("purchase__offer").get(pk=attempt_id)
    new, code, message = _outcome(payment_intent)
    if new is None or new == attempt.status:
        return attempt
    previous = attempt.status
    if previous == A.SUCCEEDED or (previous == A.FAILED and new != A.SUCCEEDED):
        return attempt  # a late or reordered report never undoes a decided outcome
    now = clock.now()
    fields: dict[str, object] = {
        "status": new, "decline_code": code, "failure_message": message[:500], "settled_by": settled_by,
        "settled_at": now, "updated_at": now,
    }
    if payment_intent.get("id") and not attempt.payment_intent_id:
        fields["payment_intent_id"] = payment_intent["id"]
    ChargeAttempt.objects.filter(pk=attempt.pk).update(**fields)
    for name, value in fields.items():
        setattr(attempt, name, value)

    if previous == A.SENDING:
        if new == A.SUCCEEDED:
            _apply_success(attempt)
        else:
            _apply_failure(attempt, needs_action=new == A.REQUIRES_ACTION)
    elif new == A.SUCCEEDED:
        # The customer completed authentication (or the bank approved late): the money is in.
        _apply_success(attempt)
    return attempt


def _apply_success(attempt: ChargeAttempt) -> None:
    purchase = attempt.purchase
    now = clock.now()
    if attempt.kind == ChargeAttempt.Kind.FULL:
        purchase_transition(purchase_id=purchase.pk, from_statuses=(S.CHARGING,), to=S.PAID, paid_at=now,
                            last_problem="")
        emails.on_commit_send("receipt", attempt=attempt)
        _paid_event(attempt, completed=True)
        return
    marked = Installment.objects.filter(pk=attempt.installment_id).exclude(status=I.PAID).update(
        status=I.PAID, paid_at=now, updated_at=now
    )
    if marked != 1:
        # Two attempts for one installment both collected (only possible if a customer authenticated an
        # old attempt after a newer one paid). Keep the truth in the ledger and let staff refund one.
        ChargeAttempt.objects.filter(pk=attempt.pk).update(failure_message="Duplicate payment: refund it in admin.")
        logger.error("attempt %s paid installment %s a second time", attempt.pk, attempt.installment_id)
        return
    emails.on_commit_send("receipt", attempt=attempt)
    unpaid = purchase.installments.exclude(status__in=(I.PAID, I.CANCELED))
    if not unpaid.exists():
        purchase_transition(purchase_id=purchase.pk, from_statuses=COLLECTING, to=S.PAID, paid_at=now, last_problem="")
        _paid_event(attempt, completed=True)
        return
    _paid_event(attempt, completed=False)
    overdue = unpaid.filter(Q(failures__gt=0) | Q(status=I.FAILED), due_at__lte=now).exists()
    if not overdue:
        current = Purchase.objects.get(pk=purchase.pk).status
        if current in (S.PAST_DUE, S.SUSPENDED):
            purchase_transition(purchase_id=purchase.pk, from_statuses=(current,), to=S.INSTALLMENTS,
                                suspended_at=None, last_problem="")


def _apply_failure(attempt: ChargeAttempt, *, needs_action: bool) -> None:
    purchase = attempt.purchase
    now = clock.now()
    problem = _problem_text(attempt, needs_action=needs_action)
    if attempt.kind == ChargeAttempt.Kind.FULL:
        purchase_transition(purchase_id=purchase.pk, from_statuses=(S.CHARGING,), to=S.INSTALLMENTS,
                            last_problem=problem)
        _installments_create(purchase=purchase, first_due=now)
        if needs_action and attempt.payment_intent_id:
            # The fallback replaces this charge; cancel it so a late authentication can't also collect it.
            payment_intent_id = attempt.payment_intent_id
            transaction.on_commit(lambda: _cancel_quietly(payment_intent_id))
        emails.on_commit_send("fallback", attempt=attempt)
        return
    installment = Installment.objects.select_for_update().get(pk=attempt.installment_id)
    failures = installment.failures + 1
    delays = list(purchase.offer.retry_delays_days or [])
    exhausted = installment.status == I.FAILED or failures > len(delays)
    if exhausted:
        Installment.objects.filter(pk=installment.pk).update(status=I.FAILED, failures=failures, updated_at=now)
        current = Purchase.objects.get(pk=purchase.pk).status
        if current in (S.INSTALLMENTS, S.PAST_DUE):
            purchase_transition(purchase_id=purchase.pk, from_statuses=(current,), to=S.SUSPENDED,
                                suspended_at=now, last_problem=problem)
            emails.on_commit_send("suspended", attempt=attempt)
        else:
            Purchase.objects.filter(pk=purchase.pk).update(last_problem=problem, updated_at=now)
    else:
        retry_at = max(installment.due_at + timedelta(days=delays[failures - 1]), now + timedelta(hours=1))
        Installment.objects.filter(pk=installment.pk).update(
            status=I.SCHEDULED, failures=failures, next_attempt_at=retry_at, updated_at=now
        )
        current = Purchase.objects.get(pk=purchase.pk).status
        if current == S.INSTALLMENTS:
            purchase_transition(purchase_id=purchase.pk, from_statuses=(S.INSTALLMENTS,), to=S.PAST_DUE,
                                last_problem=problem)
        else:
            Purchase.objects.filter(pk=purchase.pk).update(last_problem=problem, updated_at=now)
    emails.on_commit_send("authentication_needed" if needs_action else "failure", attempt=attempt)
    event_record(user_id=purchase.user_id, name=Event.INSTALLMENT_FAILED,
                 data={"purchase": purchase.pk, "installment": installment.number, "failures": failures,
                       "exhausted": exhausted, "code": attempt.decline_code, "amount_cents": attempt.amount_cents})


def _paid_event(attempt: ChargeAttempt, *, completed: bool) -> None:
    """One `paid` per collected charge. Only the settle that moved the attempt out of `sending` (under its
    row lock) and won the guarded UPDATE gets here, so a replayed webhook or a second run records nothing."""
    event_record(user_id=attempt.purchase.user_id, name=Event.PAID,
                 data={"purchase": attempt.purchase_id, "kind": attempt.kind, "amount_cents": attempt.amount_cents,
                       "installment": attempt.installment.number if attempt.installment_id else 0,
                       "completed": completed})


def _problem_text(attempt: ChargeAttempt, *, needs_action: bool) -> str:
    amount = f"${attempt.amount_cents / 100:,.2f}"
    if needs_action:
        return f"Your bank asked you to confirm the {amount} payment."
    reason = attempt.failure_message.rstrip(".") or "The card was declined"
    return f"The {amount} charge did not go through: {reason}."


def _installments_create(*, purchase: Purchase, first_due) -> None:
    offer = purchase.offer
    interval = timedelta(days=purchase.installment_interval_days)
    Installment.objects.bulk_create([
        Installment(
            purchase=purchase, number=number, amount_cents=offer.installment_cents,
            due_at=first_due + interval * (number - 1), next_attempt_at=first_due + interval * (number - 1),
        )
        for number in range(1, offer.installment_count + 1)
    ])


def _cancel_quietly(payment_intent_id: str) -> None:
    try:
        stripe_api.payment_intent_cancel(payment_intent_id=payment_intent_id)
    except stripe.StripeError:
        logger.warning("could not cancel PaymentIntent %s", payment_intent_id, exc_info=True)


# --------------------------------------------------------------------------- the periodic run


def charge_attempts_reconcile(*, older_than: timedelta = RECONCILE_AFTER) -> int:
    """Resume attempts a dead worker left `sending`, from their stored PaymentIntent."""
    stale = list(
        ChargeAttempt.objects.filter(status=A.SENDING, sent_at__lte=clock.now() - older_than)
        .order_by("sent_at").values_list("pk", flat=True)[:500]
    )
    for attempt_id in stale:
        charge_attempt_send(attempt_id=attempt_id, settled_by="reconcile")
    return len(stale)


def reminders_send_due() -> int:
    """Mail the grace-period reminder once, `reminder_hours_before` the charge."""
    now = clock.now()
    sent = 0
    candidates = Purchase.objects.filter(status=S.GRACE, reminder_sent_at__isnull=True).select_related("offer")
    for purchase in candidates.iterator():
        if purchase.grace_ends_at - timedelta(hours=purchase.offer.reminder_hours_before) > now:
            continue
        with transaction.atomic():
            claimed = Purchase.objects.filter(pk=purchase.pk, status=S.GRACE, reminder_sent_at__isnull=True).update(
                reminder_sent_at=now
            )
            if claimed:
                emails.on_commit_send("reminder", purchase=purchase)
                sent += 1
    return sent


def charge_due_run(*, batch_size: int = 50) -> dict[str, int]:
    """The beat task's body: reminders, reconciliation, then claim-and-send until nothing is due."""
    stats: Counter[str] = Counter()
    stats["reminders"] = reminders_send_due()
    stats["reconciled"] = charge_attempts_reconcile()
    while True:
        attempt_ids = charge_due_claim(limit=batch_size)
        if not attempt_ids:
            break
        for attempt_id in attempt_ids:
            attempt = charge_attempt_send(attempt_id=attempt_id)
            stats[attempt.status] += 1
    return dict(stats)


# --------------------------------------------------------------------------- the customer's own actions


def purchase_pay_due_now(*, purchase: Purchase) -> list[ChargeAttempt]:
    """Charge every installment that is due now, with the customer present (not off-session)."""
    if purchase.status not in COLLECTING:
        raise ApplicationError("Nothing is due on this purchase.", code="nothing_due")
    now = clock.now()
    with transaction.atomic():
        due = list(
            Installment.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(purchase=purchase, status__in=(I.SCHEDULED, I.FAILED), due_at__lte=now)
            .select_related("purchase").order_by("number")
        )
        if not due:
            upcoming = purchase.installments.filter(status=I.SCHEDULED).order_by("due_at").first()
            when = f" The next installment is due on {upcoming.due_at:%B %-d, %Y}." if upcoming else ""
            raise ApplicationError(f"Nothing is due right now.{when}", code="nothing_due")
        attempt_ids = [_installment_claim(installment=item, now=now, on_session=True) for item in due]
    return [charge_attempt_send(attempt_id=attempt_id, settled_by="customer") for attempt_id in attempt_ids]


def charge_attempt_refresh(*, attempt: ChargeAttempt, settled_by: str = "customer") -> ChargeAttempt:
    """Ask Stripe for the attempt's PaymentIntent and settle from it (after the customer authenticated)."""
    if not attempt.payment_intent_id:
        return attempt
    payment_intent = stripe_api.payment_intent_retrieve(payment_intent_id=attempt.payment_intent_id)
    return charge_attempt_settle(attempt_id=attempt.pk, payment_intent=payment_intent, settled_by=settled_by)


def charge_attempt_authenticate_local(*, attempt: ChargeAttempt) -> ChargeAttempt:
    """Local mode: play the bank's 3-D Secure page and approve, then settle from Stripe's answer."""
    if attempt.status != A.REQUIRES_ACTION:
        raise ApplicationError("This payment does not need confirming any more.", code="not_pending")
    payment_intent = stripe_api.payment_intent_retrieve(payment_intent_id=attempt.payment_intent_id)
    if payment_intent.get("status") == "requires_action":
        stripe_api.payment_intent_authenticate_locally(
            payment_intent_id=attempt.payment_intent_id, client_secret=payment_intent["client_secret"]
        )
    return charge_attempt_refresh(attempt=attempt)
