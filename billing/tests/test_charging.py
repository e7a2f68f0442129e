"""Stripe's test cards through the real charge path, asserted on the ledger and the stand-in's state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from billing import clock
from billing.models import ChargeAttempt, Installment, PaymentProfile, Purchase
from billing.selectors import entitlements_for_user
from billing.services import (
    card_attach_test_card,
    charge_attempt_authenticate_local,
    charge_due_run,
    purchase_pay_due_now,
)
from billing.tests.factories import (
    DECLINE_ON_ATTACH,
    DECLINE_ON_CHARGE,
    INSUFFICIENT_FUNDS,
    NEEDS_AUTHENTICATION,
    VISA,
    card_user_make,
    purchase_make,
)
from common.errors import ApplicationError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("djstripe_local")]

A = ChargeAttempt.Status
S = Purchase.Status


def test_4242_is_charged_once_when_grace_ends(stand_in, django_capture_on_commit_callbacks):
    purchase = purchase_make(card=VISA)
    charge_due_run()
    assert stand_in.payment_intents() == []  # grace still running: nothing charged

    clock.clock_advance(seconds=24 * 3600 + 1)
    with django_capture_on_commit_callbacks(execute=True):
        charge_due_run()

    purchase.refresh_from_db()
    assert purchase.status == S.PAID
    attempt = purchase.attempts.get()
    assert (attempt.kind, attempt.status, attempt.amount_cents) == ("full", A.SUCCEEDED, 199900)
    assert attempt.idempotency_key == f"parley-p{purchase.pk}-full"
    [payment_intent] = stand_in.payment_intents()
    assert (payment_intent["id"], payment_intent["status"], payment_intent["amount"]) == (
        attempt.payment_intent_id, "succeeded", 199900)
    assert payment_intent["metadata"]["parley_attempt_id"] == str(attempt.pk)
    assert any("Receipt" in m.subject for m in mail.outbox)
    assert entitlements_for_user(user=purchase.user).plan == "pro"


@pytest.mark.parametrize("number", [DECLINE_ON_ATTACH, INSUFFICIENT_FUNDS])
def test_cards_declined_when_saved_never_reach_a_purchase(stand_in, number):
    user = card_user_make(card=VISA)
    PaymentProfile.objects.filter(user=user).update(payment_method_id="")

    with pytest.raises(ApplicationError) as error:
        card_attach_test_card(user=user, number=number, exp_month=12, exp_year=2030, cvc="123")

    assert "declined" in error.value.message and "could not be saved" in error.value.message
    assert PaymentProfile.objects.get(user=user).payment_method_id == ""
    assert stand_in.payment_intents() == []
    assert not ChargeAttempt.objects.exists()


def test_0341_falls_back_to_installments_then_retries_then_suspends(stand_in):
    purchase = purchase_make(card=DECLINE_ON_CHARGE, grace_over=True)

    charge_due_run()

    purchase.refresh_from_db()
    full, first = purchase.attempts.order_by("sent_at", "id")
    assert (full.kind, full.status, full.amount_cents, full.decline_code) == ("full", A.FAILED, 199900, "card_declined")
    assert (first.kind, first.status, first.amount_cents) == ("installment", A.FAILED, 1999)
    assert purchase.status == S.PAST_DUE
    assert purchase.installments.count() == 100
    installment = purchase.installments.get(number=1)
    assert installment.failures == 1
    assert installment.next_attempt_at == installment.due_at + timedelta(days=1)
    assert sorted(pi["amount"] for pi in stand_in.payment_intents()) == [1999, 199900]
    assert stand_in.succeeded() == []
    assert entitlements_for_user(user=purchase.user).plan == "pro"  # past due keeps access

    for days in (1, 3, 5):  # to each retry date in turn
        clock.clock_reset()
        clock.clock_advance(seconds=(installment.due_at + timedelta(days=days) - clock.now()).total_seconds() + 1)
        charge_due_run()

    purchase.refresh_from_db()
    installment.refresh_from_db()
    assert installment.status == Installment.Status.FAILED and installment.failures == 4
    assert purchase.status == S.SUSPENDED
    assert entitlements_for_user(user=purchase.user).plan == "free"
    assert len(stand_in.payment_intents()) == 5  # the full charge and four tries at installment 1

    # The customer saves a working card and pays what is due: access comes back.
    card_attach_test_card(user=purchase.user, number=VISA, exp_month=12, exp_year=2030, cvc="123")
    [attempt] = purchase_pay_due_now(purchase=purchase)

    assert attempt.status == A.SUCCEEDED and attempt.on_session
    purchase.refresh_from_db()
    assert purchase.status == S.INSTALLMENTS
    assert purchase.installments.filter(status=Installment.Status.PAID).count() == 1
    assert [pi["amount"] for pi in stand_in.succeeded()] == [1999]


def test_3155_needs_authentication_then_the_customer_confirms(stand_in, django_capture_on_commit_callbacks):
    purchase = purchase_make(card=NEEDS_AUTHENTICATION, grace_over=True)

    with django_capture_on_commit_callbacks(execute=True):
        charge_due_run()

    purchase.refresh_from_db()
    full, first = purchase.attempts.order_by("sent_at", "id")
    assert full.status == A.REQUIRES_ACTION and first.status == A.REQUIRES_ACTION
    assert purchase.status == S.PAST_DUE
    states = {pi["id"]: pi["status"] for pi in stand_in.payment_intents()}
    # The full charge was replaced by installments, so it is canceled and can never also be collected.
    assert states == {full.payment_intent_id: "canceled", first.payment_intent_id: "requires_action"}
    [notice] = [m for m in mail.outbox if "confirm" in m.subject.lower()]
    assert f"/billing/payments/{first.pk}/authenticate/" in notice.body

    attempt = charge_attempt_authenticate_local(attempt=first)

    assert attempt.status == A.SUCCEEDED
    purchase.refresh_from_db()
    assert purchase.status == S.INSTALLMENTS
    assert [pi["id"] for pi in stand_in.succeeded()] == [first.payment_intent_id]


def test_a_second_run_finds_nothing_to_charge(stand_in):
    purchase_make(card=VISA, grace_over=True)
    charge_due_run()
    charge_due_run()

    assert len(stand_in.payment_intents()) == 1
    assert ChargeAttempt.objects.count() == 1


def test_reminder_is_mailed_once_two_hours_before_the_charge(stand_in, django_capture_on_commit_callbacks):
    purchase = purchase_make(card=VISA)

    clock.clock_advance(seconds=21 * 3600)
    with django_capture_on_commit_callbacks(execute=True):
        charge_due_run()
    assert not [m for m in mail.outbox if "will be charged" in m.subject]

    clock.clock_advance(seconds=3600 + 60)
    with django_capture_on_commit_callbacks(execute=True):
        charge_due_run()
        charge_due_run()

    [reminder] = [m for m in mail.outbox if "will be charged" in m.subject]
    assert reminder.to == [purchase.user.email] and "$1,999.00" in reminder.body
    assert "/billing/" in reminder.body
    assert stand_in.payment_intents() == []
