from __future__ import annotations

from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import user_make


def pro_user_make() -> User:
    """A user whose purchase of Parley Pro is paid: billing's entitlements give them the Pro plan. The row is
    written directly, as the charge that would have paid it needs the Stripe stand-in (billing's own tests)."""
    from billing.models import Purchase
    from billing.tests.factories import offer_make

    user = user_make()
    offer = offer_make()
    now = timezone.now()
    Purchase.objects.create(user=user, offer=offer, status=Purchase.Status.PAID, amount_cents=offer.price_cents,
                            currency=offer.currency, started_at=now, grace_ends_at=now, paid_at=now,
                            terms_version=offer.terms_version, terms_accepted_at=now,
                            installment_interval_days=offer.installment_interval_days)
    return user
