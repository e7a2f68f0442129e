"""Staff operations: refunds through the stand-in, cancel, retry now, cadence, the daily report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.tests.factories import staff_login, user_make
from billing import clock
from billing.models import Installment, Purchase, Refund
from billing.services import charge_due_run, purchase_cadence_change, purchase_refund, purchase_retry_now
from billing.tests.factories import DECLINE_ON_CHARGE, VISA, purchase_make
from common.errors import ApplicationError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("djstripe_local")]


def _paid_purchase():
    purchase = purchase_make(card=VISA, grace_over=True)
    charge_due_run()
    purchase.refresh_from_db()
    return purchase


def test_partial_then_full_refund_through_stripe(stand_in):
    purchase = _paid_purchase()
    staff = user_make(is_staff=True, is_superuser=True)

    purchase_refund(purchase=purchase, amount_cents=50000, by=staff, reason="goodwill")
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_cents) == (Purchase.Status.PAID, 50000)

    purchase_refund(purchase=purchase, amount_cents=None, by=staff)
    purchase.refresh_from_db()
    assert (purchase.status, purchase.refunded_cents) == (Purchase.Status.REFUNDED, 199900)
    assert sorted(r.amount_cents for r in Refund.objects.all()) == [50000, 149900]
    with pytest.raises(ApplicationError, match="nothing to refund"):
        purchase_refund(purchase=purchase, amount_cents=None, by=staff)


def test_admin_pages_and_actions(client, stand_in):
    purchase = _paid_purchase()
    staff_login(client, user_make(is_staff=True, is_superuser=True))

    change = client.get(reverse("admin:billing_purchase_change", args=[purchase.pk]))
    report = client.get(reverse("admin:billing_purchase_report"))
    refund = client.post(reverse("admin:billing_purchase_changelist"), {
        "action": "refund", "_selected_action": [purchase.pk], "apply": "1", "amount": "10.00", "reason": "test"})

    assert change.status_code == 200 and "parley-p" in change.content.decode()
    assert report.status_code == 200 and "$1,999.00" in report.content.decode()
    assert refund.status_code == 302
    assert Refund.objects.get().amount_cents == 1000


def test_amounts_read_as_money_with_the_currency_in_the_lists(client, stand_in):
    purchase = _paid_purchase()
    staff_login(client, user_make(is_staff=True, is_superuser=True))

    purchases = client.get(reverse("admin:billing_purchase_changelist")).content.decode()
    offers = client.get(reverse("admin:billing_offer_changelist")).content.decode()
    attempts = client.get(reverse("admin:billing_chargeattempt_changelist")).content.decode()
    change = client.get(reverse("admin:billing_purchase_change", args=[purchase.pk])).content.decode()

    assert ">$1,999.00 USD</td>" in purchases and ">199900<" not in purchases
    assert ">$1,999.00 USD</td>" in offers and ">$19.99 USD</td>" in offers
    assert ">$1,999.00 USD</td>" in attempts
    assert "$1,999.00 USD" in change  # the charge attempts inline


def test_retry_now_and_cadence(stand_in):
    purchase = purchase_make(card=DECLINE_ON_CHARGE, grace_over=True)
    charge_due_run()
    purchase.refresh_from_db()

    purchase_cadence_change(purchase=purchase, interval_days=14)
    second, third = purchase.installments.filter(number__in=(2, 3)).order_by("number")
    first = purchase.installments.get(number=1)
    assert second.due_at == first.due_at + timedelta(days=14)
    assert third.due_at - second.due_at == timedelta(days=14)

    assert purchase_retry_now(purchase=purchase) == 1
    charge_due_run()
    first.refresh_from_db()
    assert first.failures == 2 and first.status == Installment.Status.SCHEDULED
    assert len(stand_in.payment_intents()) == 3
    assert clock.now() < first.next_attempt_at
