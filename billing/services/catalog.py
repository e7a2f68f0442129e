"""What is on sale: the plans and the Parley Pro offer, installed from billing.offer_defaults."""

from __future__ import annotations

from django.db import transaction

from billing.models import Offer, Plan
from billing.offer_defaults import FREE_PLAN, PRO_OFFER, PRO_PLAN, PRO_SLUG
from billing.selectors import PLANS


@transaction.atomic
def catalog_install() -> Offer:
    """The free and Pro plans and the Pro offer granting Pro, as migrations 0002–0003 install them.

    Rows that exist keep their numbers (staff may have edited them); only missing ones are created.
    Tests call this after a flush, and bench_billing before it runs."""
    Plan.objects.get_or_create(slug=Plan.FREE_SLUG, defaults=FREE_PLAN)
    pro, _ = Plan.objects.get_or_create(slug="pro", defaults=PRO_PLAN)
    offer, created = Offer.objects.get_or_create(slug=PRO_SLUG, defaults={**PRO_OFFER, "plan": pro})
    if not created and offer.plan_id is None:
        Offer.objects.filter(pk=offer.pk, plan__isnull=True).update(plan=pro)
        PLANS.changed()  # .update() sends no signal
        offer.refresh_from_db()
    return offer
