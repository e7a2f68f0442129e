"""Domain events reach product analytics once per action, only with consent, never under GPC.

Chat, knowledge and billing record them from their own services at the moment the action commits;
billing's charges run against the localstripe stand-in and its signed webhooks, as billing's tests do.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import user_make
from billing import clock
from billing.models import ChargeAttempt, Purchase
from billing.services import charge_due_run, purchase_cancel, purchase_cancel_by_staff
from billing.tests.conftest import djstripe_local, localstripe_server, stand_in  # noqa: F401 - fixtures
from billing.tests.factories import DECLINE_ON_CHARGE, VISA, card_user_make, purchase_make
from billing.tests.test_webhooks import _events, _interrupted_charge, _post
from chat.models import Message
from chat.services import assistant_create, conversation_create, message_assistant_finish, message_assistant_start
from chat.tests.factories import conversation_make
from onboarding.models import AnalyticsEvent, Consent, ConsentChoice, Event

pytestmark = pytest.mark.django_db


def consent(user, choice: str = ConsentChoice.ANALYTICS, version: str | None = None):
    Consent.objects.update_or_create(user=user, defaults={
        "choice": choice, "policy_version": version or settings.PARLEY_ANALYTICS_POLICY_VERSION,
        "decided_at": timezone.now()})
    return user


def events(user, name: str | None = None) -> list[AnalyticsEvent]:
    rows = AnalyticsEvent.objects.filter(user=user, source=AnalyticsEvent.Source.SERVER).order_by("id")
    return list(rows.filter(name=name) if name else rows)


def gpc_request(user, path: str = "/billing/"):
    request = RequestFactory().post(path, HTTP_SEC_GPC="1", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64)")
    request.user = user
    return request


def finish(conversation, *, via: str = "text", citations: list | None = None) -> Message:
    message = message_assistant_start(conversation=conversation, request_id=f"r-{timezone.now().timestamp()}",
                                      context={}, via=via, citations=citations)
    assert message_assistant_finish(message_id=message.pk, text="Hello [1].", status=Message.Status.DONE)
    return message


# --------------------------------------------------------------------------- chat


def test_a_voice_reply_from_documents_records_each_of_its_events_once():
    user = consent(user_make())
    conversation = conversation_make(user=user)

    message = finish(conversation, via="voice", citations=[{"number": 1, "document_id": 7, "chunk_id": 3}])
    # A second settle of the same reply (a retry, the orphan sweep) changes nothing and records nothing.
    assert not message_assistant_finish(message_id=message.pk, text="Hello.", status=Message.Status.DONE)

    names = sorted(event.name for event in events(user))
    assert names == sorted([Event.CONVERSATION_STARTED, Event.REPLY_COMPLETED, Event.ASSISTANT_USED,
                            Event.VOICE_TURN, Event.GROUNDED_ANSWER])
    [used] = events(user, Event.ASSISTANT_USED)
    assert used.props == {"assistant": "general", "assistant_id": conversation.assistant_id, "via": "voice"}
    [grounded] = events(user, Event.GROUNDED_ANSWER)
    assert grounded.props == {"via": "chat", "citations": 1}
    [voice] = events(user, Event.VOICE_TURN)
    assert voice.props == {"conversation": conversation.pk}


def test_a_text_reply_without_sources_is_no_voice_turn_and_no_grounded_answer():
    user = consent(user_make())
    finish(conversation_make(user=user))

    assert {event.name for event in events(user)} == {Event.CONVERSATION_STARTED, Event.REPLY_COMPLETED,
                                                      Event.ASSISTANT_USED}


def test_a_failed_reply_records_no_reply_events():
    user = consent(user_make())
    conversation = conversation_make(user=user)
    message = message_assistant_start(conversation=conversation, request_id="r-failed", context={})
    message_assistant_finish(message_id=message.pk, text="", status=Message.Status.FAILED, error="down")

    assert [event.name for event in events(user)] == [Event.CONVERSATION_STARTED]


def test_a_users_own_assistant_is_named_by_id_not_by_the_name_they_typed():
    user = consent(user_make())
    mine = assistant_create(owner=user, name="Dr Jane Smith's helper", system_prompt="Be brief.")
    finish(conversation_create(user=user, assistant=mine))

    [used] = events(user, Event.ASSISTANT_USED)
    assert used.props == {"assistant": "custom", "assistant_id": mine.pk, "via": "text"}
    assert "jane" not in str(used.props).lower()


@pytest.mark.parametrize("choice, version", [
    (None, None),  # never asked
    (ConsentChoice.NECESSARY, None),  # said no
    (ConsentChoice.ANALYTICS, "1999-01"),  # said yes to an older policy
])
def test_no_consent_under_the_current_policy_means_no_event(choice, version):
    user = user_make()
    if choice:
        consent(user, choice, version)
    finish(conversation_make(user=user), via="voice", citations=[{"number": 1}])

    assert events(user) == []


# --------------------------------------------------------------------------- billing


@pytest.fixture
def billing_ready(djstripe_local):  # noqa: F811 - the imported fixture
    return djstripe_local


def test_purchase_started_once_per_purchase(billing_ready):
    user = consent(card_user_make(card=VISA))
    purchase = purchase_make(user=user)

    [started] = events(user, Event.PURCHASE_STARTED)
    assert started.props == {"purchase": purchase.pk, "offer": purchase.offer.slug,
                             "amount_cents": purchase.amount_cents, "grace": True}


def test_checkout_with_gpc_records_no_purchase_started(billing_ready, client):
    user = consent(card_user_make(card=VISA))
    client.force_login(user)
    from billing.tests.factories import offer_make

    offer = offer_make()
    response = client.post(reverse("billing:checkout"), {"agree": "on", "terms_version": offer.terms_version},
                           HTTP_SEC_GPC="1")

    assert response.status_code == 302
    assert Purchase.objects.filter(user=user).exists()
    assert events(user, Event.PURCHASE_STARTED) == []


def test_paid_once_when_the_charge_runs_twice(billing_ready):
    user = consent(card_user_make(card=VISA))
    purchase = purchase_make(user=user, grace_over=True)

    charge_due_run()
    charge_due_run()

    [paid] = events(user, Event.PAID)
    assert paid.props == {"purchase": purchase.pk, "kind": "full", "amount_cents": purchase.amount_cents,
                          "installment": 0, "completed": True}


def test_a_replayed_success_webhook_records_paid_once(billing_ready, client, stand_in):  # noqa: F811
    attempt = _interrupted_charge()
    user = consent(attempt.purchase.user)
    [event] = _events("payment_intent.succeeded")

    _post(client, billing_ready, event, secret=billing_ready.secret)
    _post(client, billing_ready, event, secret=billing_ready.secret)
    charge_due_run()  # the reconciler finds the attempt settled

    attempt.refresh_from_db()
    assert attempt.status == ChargeAttempt.Status.SUCCEEDED
    assert len(events(user, Event.PAID)) == 1


def test_installment_failed_once_per_failed_try_even_when_beat_and_webhooks_repeat(billing_ready, client):
    user = consent(card_user_make(card=DECLINE_ON_CHARGE))
    purchase = purchase_make(user=user, grace_over=True)

    charge_due_run()  # the full charge fails, installments start, the first one fails
    charge_due_run()  # nothing is due until the retry date
    # Stripe's own reports of both failures, each delivered twice.
    for event in _events("payment_intent.payment_failed"):
        _post(client, billing_ready, event, secret=billing_ready.secret)
        _post(client, billing_ready, event, secret=billing_ready.secret)

    [failed] = events(user, Event.INSTALLMENT_FAILED)
    assert failed.props == {"purchase": purchase.pk, "installment": 1, "failures": 1, "exhausted": False,
                            "code": "card_declined", "amount_cents": 1999}
    assert events(user, Event.PAID) == []

    # The retry date: a second try, a second event.
    installment = purchase.installments.get(number=1)
    installment.refresh_from_db()
    clock.clock_advance(seconds=(installment.next_attempt_at - clock.now()).total_seconds() + 1)
    charge_due_run()
    assert [e.props["failures"] for e in events(user, Event.INSTALLMENT_FAILED)] == [1, 2]


def test_canceled_by_the_customer_once_and_not_under_gpc(billing_ready):
    user = consent(card_user_make(card=VISA))
    purchase = purchase_make(user=user)

    purchase_cancel(purchase=purchase)
    with pytest.raises(Exception, match="already canceled"):
        purchase_cancel(purchase=purchase)

    [canceled] = events(user, Event.CANCELED)
    assert canceled.props == {"purchase": purchase.pk, "by": "customer"}

    other = consent(card_user_make(card=VISA))
    second = purchase_make(user=other)
    purchase_cancel(purchase=second, request=gpc_request(other))
    assert Purchase.objects.get(pk=second.pk).status == Purchase.Status.CANCELED
    assert events(other, Event.CANCELED) == []


def test_cancel_through_the_page_passes_the_request_so_gpc_is_honoured(billing_ready, client):
    user = consent(card_user_make(card=VISA))
    purchase = purchase_make(user=user)
    client.force_login(user)

    response = client.post(reverse("billing:cancel", args=[purchase.pk]), HTTP_SEC_GPC="1")

    assert response.status_code == 302
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.CANCELED
    assert events(user, Event.CANCELED) == []


def test_staff_cancel_is_the_customers_event(billing_ready):
    user = consent(card_user_make(card=DECLINE_ON_CHARGE))
    purchase = purchase_make(user=user, grace_over=True)
    charge_due_run()  # on installments now
    purchase.refresh_from_db()

    purchase_cancel_by_staff(purchase=purchase)

    [canceled] = events(user, Event.CANCELED)
    assert canceled.props == {"purchase": purchase.pk, "by": "staff"}


def test_billing_events_need_consent(billing_ready):
    user = card_user_make(card=VISA)
    purchase = purchase_make(user=user, grace_over=True)
    charge_due_run()

    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.PAID
    assert AnalyticsEvent.objects.filter(user=user).count() == 0



def test_an_invitee_joining_counts_for_the_inviter_without_naming_the_invitee():
    from accounts.services import invitation_accept, invitation_create, invitation_token
    from knowledge.tests.factories import team_make

    inviter = consent(user_make())
    team = team_make(owner=inviter)
    invitee = user_make(email="joiner@example.com")
    invitation = invitation_create(team=team, by=inviter, email="joiner@example.com")
    invitation_accept(token=invitation_token(invitation), user=invitee)

    [joined] = events(inviter, Event.INVITEE_JOINED)
    assert joined.props == {"team": team.pk}  # the invitee never consented to the inviter's analytics
