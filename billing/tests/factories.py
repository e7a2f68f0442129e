from __future__ import annotations

from datetime import timedelta

from accounts.models import User
from accounts.tests.factories import user_make
from billing import clock
from billing.models import Offer, Plan, Purchase
from billing.offer_defaults import FREE_PLAN
from billing.services import card_attach_test_card, catalog_install, purchase_create

VISA = "4242424242424242"
DECLINE_ON_ATTACH = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
DECLINE_ON_CHARGE = "4000000000000341"
NEEDS_AUTHENTICATION = "4000002500003155"


def offer_make() -> Offer:
    """Parley Pro and its plan, as the migrations install them (transactional tests flush migration data)."""
    return catalog_install()


def free_plan_set(**limits: int) -> Plan:
    """The free plan with some limits changed (staff edit this row in admin), and Pro on sale as the upgrade.
    Every user without a purchase gets these limits, in this process and in the test worker."""
    offer_make()
    plan, _ = Plan.objects.update_or_create(slug=Plan.FREE_SLUG, defaults={**FREE_PLAN, **limits})
    return plan


def card_user_make(*, card: str = VISA, **extra: object) -> User:
    """A verified user with a card saved at the stand-in."""
    user = user_make(**extra)
    card_attach_test_card(user=user, number=card, exp_month=12, exp_year=clock.now().year + 3, cvc="123")
    return user


def purchase_make(*, user: User | None = None, card: str = VISA, grace_over: bool = False) -> Purchase:
    """A purchase in grace; with `grace_over`, one whose grace ended a minute ago (as beat finds it)."""
    user = user or card_user_make(card=card)
    offer = offer_make()
    purchase = purchase_create(user=user, offer=offer, terms_accepted=True, terms_version=offer.terms_version)
    if grace_over:
        Purchase.objects.filter(pk=purchase.pk).update(grace_ends_at=clock.now() - timedelta(minutes=1))
        purchase.refresh_from_db()
    return purchase
