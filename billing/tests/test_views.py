"""The billing pages as owner, outsider and anonymous visitor; the clear refusals; the status API."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.tests.factories import user_make
from billing import clock
from billing.models import ChargeAttempt, PaymentProfile, Purchase
from billing.services import charge_due_run
from billing.tests.factories import (
    DECLINE_ON_ATTACH,
    DECLINE_ON_CHARGE,
    NEEDS_AUTHENTICATION,
    VISA,
    card_user_make,
    offer_make,
    purchase_make,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("djstripe_local")]


def _checkout_data(offer, **card):
    data = {"agree": "on", "terms_version": offer.terms_version, "card-number": "", "card-exp_month": "12",
            "card-exp_year": str(clock.now().year + 3), "card-cvc": "123"}
    data.update({f"card-{k}": v for k, v in card.items()})
    return data


def test_buy_with_the_local_test_card_form(client, stand_in):
    user = user_make()
    offer = offer_make()
    client.force_login(user)

    response = client.post(reverse("billing:checkout"), _checkout_data(offer, number="4242 4242 4242 4242"))

    assert response.status_code == 302
    purchase = Purchase.objects.get(user=user)
    assert (purchase.status, purchase.terms_version) == (Purchase.Status.GRACE, offer.terms_version)
    assert purchase.terms_accepted_at is not None
    page = client.get(reverse("billing:overview")).content.decode()
    assert "left to cancel at no charge" in page and "23 hours 59 minutes" in page
    assert "Visa •••• 4242" in page


def test_checkout_without_agreeing_is_refused(client, stand_in):
    user = user_make()
    offer = offer_make()
    client.force_login(user)
    data = _checkout_data(offer, number=VISA)
    del data["agree"]

    response = client.post(reverse("billing:checkout"), data)

    assert response.status_code == 400
    assert "agree to the terms" in response.content.decode()
    assert not Purchase.objects.exists()


def test_a_card_that_fails_to_attach_gets_a_form_error(client, stand_in):
    user = user_make()
    offer = offer_make()
    client.force_login(user)

    response = client.post(reverse("billing:checkout"), _checkout_data(offer, number=DECLINE_ON_ATTACH))

    assert response.status_code == 402
    body = response.content.decode()
    assert "Your card was declined, so the card could not be saved" in body
    assert not Purchase.objects.exists()
    assert not PaymentProfile.objects.filter(user=user).exclude(payment_method_id="").exists()

    response = client.post(reverse("billing:card"), {"number": DECLINE_ON_ATTACH, "exp_month": 12,
                                                     "exp_year": 2030, "cvc": "123"})
    assert response.status_code == 402
    assert "could not be saved" in response.content.decode()


def test_a_second_purchase_while_one_is_active_is_refused(client, stand_in):
    purchase = purchase_make(card=VISA)
    client.force_login(purchase.user)

    response = client.post(reverse("billing:checkout"), _checkout_data(purchase.offer))

    assert response.status_code == 409
    assert "a second purchase is not possible while it is active" in response.content.decode()
    assert Purchase.objects.filter(user=purchase.user).count() == 1


def test_cancel_during_grace_costs_nothing(client, stand_in):
    purchase = purchase_make(card=VISA)
    client.force_login(purchase.user)

    confirm = client.get(reverse("billing:cancel", args=[purchase.pk]))
    response = client.post(reverse("billing:cancel", args=[purchase.pk]))

    assert "will not be charged" in confirm.content.decode()
    assert response.status_code == 302
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.CANCELED
    clock.clock_advance(seconds=2 * 24 * 3600)
    charge_due_run()
    assert stand_in.payment_intents() == []


def test_cancel_after_grace_is_refused_clearly(client, stand_in):
    purchase = purchase_make(card=VISA)
    client.force_login(purchase.user)
    clock.clock_advance(seconds=24 * 3600 + 60)

    response = client.post(reverse("billing:cancel", args=[purchase.pk]))

    assert response.status_code == 409
    assert "free cancellation period ended" in response.content.decode()
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.GRACE  # the charge task takes it from here


def test_pay_due_now_and_history(client, stand_in):
    purchase = purchase_make(card=DECLINE_ON_CHARGE, grace_over=True)
    charge_due_run()
    client.force_login(purchase.user)
    client.post(reverse("billing:card"), {"number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "123"})

    response = client.post(reverse("billing:pay_due", args=[purchase.pk]))

    assert response.status_code == 302
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.INSTALLMENTS
    page = client.get(reverse("billing:overview")).content.decode()
    assert "1 of 100" in page and "Installment 1 of 100" in page and "Declined" in page


def test_authenticate_link_confirms_the_payment(client, stand_in):
    purchase = purchase_make(card=NEEDS_AUTHENTICATION, grace_over=True)
    charge_due_run()
    attempt = ChargeAttempt.objects.get(kind="installment")
    client.force_login(purchase.user)

    page = client.get(reverse("billing:overview")).content.decode()
    response = client.post(reverse("billing:authenticate", args=[attempt.pk]))

    assert "Confirm the payment" in page
    assert response.status_code == 302
    attempt.refresh_from_db()
    assert attempt.status == ChargeAttempt.Status.SUCCEEDED


@pytest.mark.parametrize("name,method", [("billing:cancel", "post"), ("billing:cancel", "get"),
                                         ("billing:pay_due", "post")])
def test_outsiders_get_404_for_another_users_purchase(client, stand_in, name, method):
    purchase = purchase_make(card=VISA)
    client.force_login(user_make())

    response = getattr(client, method)(reverse(name, args=[purchase.pk]))

    assert response.status_code == 404
    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.GRACE


@pytest.mark.parametrize("method", ["get", "post"])
def test_outsiders_get_404_for_another_users_payment(client, stand_in, method):
    purchase_make(card=NEEDS_AUTHENTICATION, grace_over=True)
    charge_due_run()
    attempt = ChargeAttempt.objects.get(kind="installment")
    client.force_login(user_make())

    response = getattr(client, method)(reverse("billing:authenticate", args=[attempt.pk]))

    assert response.status_code == 404
    attempt.refresh_from_db()
    assert attempt.status == ChargeAttempt.Status.REQUIRES_ACTION


@pytest.mark.parametrize("name", ["billing:overview", "billing:checkout", "billing:card", "billing:card_done"])
def test_anonymous_visitors_are_sent_to_log_in(client, name):
    response = client.get(reverse(name))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_outsider_sees_only_their_own_billing_page(client, stand_in):
    purchase = purchase_make(card=VISA)
    outsider = card_user_make(card=VISA)
    client.force_login(outsider)

    page = client.get(reverse("billing:overview")).content.decode()

    assert purchase.user.email not in page and "Get Parley Pro" in page


def test_setup_intent_endpoint_refuses_local_mode_and_card_numbers_never_post_elsewhere(client, stand_in):
    client.force_login(user_make())

    assert client.post(reverse("billing:card_setup_intent")).status_code == 400
    assert client.get(reverse("billing:card_done") + "?setup_intent=seti_x").status_code == 400


def test_status_api(client, stand_in):
    purchase = purchase_make(card=VISA)
    client.force_login(purchase.user)

    body = client.get("/api/billing/status/").json()

    assert body["plan"] == "pro" and body["status"] == "grace"
    assert body["entitlements"]["tokens_per_day"] == 1_000_000 and body["entitlements"]["plan_name"] == "Parley Pro"
    client.logout()
    assert client.get("/api/billing/status/").status_code == 401
