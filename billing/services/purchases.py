"""The purchase state machine. Every move is a guarded UPDATE: it only happens from the states the
transition allows, so two processes racing to move the same purchase cannot both win."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils.formats import date_format

from accounts.models import User
from billing import clock
from billing.models import Offer, PaymentProfile, Purchase
from billing.selectors import purchase_had_grace
from common.errors import ApplicationError
from onboarding.services import Event, event_record

S = Purchase.Status

# (from, to) pairs the domain allows. Staff may end an installment plan early (cancel) and refund
# anything that collected money; customers may cancel only during grace (purchase_cancel).
ALLOWED_TRANSITIONS: frozenset[tuple[str, str]] = frozenset({
    (S.GRACE, S.CHARGING),
    (S.GRACE, S.CANCELED),
    (S.CHARGING, S.PAID),
    (S.CHARGING, S.INSTALLMENTS),
    (S.INSTALLMENTS, S.PAID),
    (S.INSTALLMENTS, S.PAST_DUE),
    (S.PAST_DUE, S.INSTALLMENTS),
    (S.PAST_DUE, S.PAID),
    (S.PAST_DUE, S.SUSPENDED),
    (S.INSTALLMENTS, S.SUSPENDED),
    (S.SUSPENDED, S.INSTALLMENTS),
    (S.SUSPENDED, S.PAID),
    (S.INSTALLMENTS, S.CANCELED),
    (S.PAST_DUE, S.CANCELED),
    (S.SUSPENDED, S.CANCELED),
    (S.PAID, S.REFUNDED),
    (S.INSTALLMENTS, S.REFUNDED),
    (S.PAST_DUE, S.REFUNDED),
    (S.SUSPENDED, S.REFUNDED),
    (S.CANCELED, S.REFUNDED),
})


class InvalidTransition(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="invalid_transition", status=409)


def purchase_transition(*, purchase_id: int, from_statuses: tuple[str, ...], to: str, **fields: object) -> None:
    """Move a purchase from one of `from_statuses` to `to`, or raise InvalidTransition saying why not."""
    for source in from_statuses:
        if (source, to) not in ALLOWED_TRANSITIONS:
            raise InvalidTransition(f"A purchase cannot go from {source!r} to {to!r}.")
    updated = Purchase.objects.filter(pk=purchase_id, status__in=from_statuses).update(
        status=to, updated_at=clock.now(), **fields
    )
    if updated != 1:
        current = Purchase.objects.filter(pk=purchase_id).values_list("status", flat=True).first()
        raise InvalidTransition(
            f"Purchase {purchase_id} is {current!r}, not one of {', '.join(from_statuses)}; it cannot move to {to!r}."
        )


def offer_default() -> Offer:
    offer = Offer.objects.filter(is_active=True).order_by("id").first()
    if offer is None:
        raise ApplicationError("Nothing is on sale right now.", code="no_offer", status=404)
    return offer


@transaction.atomic
def purchase_create(*, user: User, offer: Offer, terms_accepted: bool, terms_version: str,
                    request=None) -> Purchase:
    """Start a purchase: full access now, the charge when the grace period ends."""
    if not offer.is_active:
        raise ApplicationError(f"{offer.name} is no longer on sale.", code="offer_inactive")
    if not terms_accepted:
        raise ApplicationError("Please tick the box to agree to the terms before buying.", code="terms_required")
    if terms_version != offer.terms_version:
        raise ApplicationError(
            "The terms changed while this page was open. Please read the current terms and agree again.",
            code="terms_outdated",
        )
    profile = PaymentProfile.objects.filter(user=user).first()
    if profile is None or not profile.has_card:
        raise ApplicationError("Add a card before buying; it is charged when the grace period ends.", code="no_card")
    existing = Purchase.objects.filter(user=user, status__in=Purchase.OPEN_STATUSES).first()
    if existing is not None:
        raise _already_purchased(existing)
    now = clock.now()
    # The grace period comes once per customer (the terms say so): buy, cancel within grace, buy again
    # would otherwise give Pro for free forever. A returning customer's purchase is due at once, and the
    # charge is queued as the row commits; beat's claim (a guarded UPDATE) makes it one charge either way.
    had_grace = purchase_had_grace(user=user)
    grace_ends_at = now if had_grace else now + timedelta(hours=offer.grace_hours)
    try:
        with transaction.atomic():
            purchase = Purchase.objects.create(
                user=user, offer=offer, status=S.GRACE, amount_cents=offer.price_cents, currency=offer.currency,
                started_at=now, grace_ends_at=grace_ends_at,
                terms_version=offer.terms_version, terms_accepted_at=now,
                installment_interval_days=offer.installment_interval_days,
            )
    except IntegrityError:  # a concurrent checkout of the same user won (billing_one_open_purchase_per_user)
        raise _already_purchased(Purchase.objects.filter(user=user, status__in=Purchase.OPEN_STATUSES).first())
    # Recorded after the row exists; a losing concurrent checkout raised above and records nothing.
    event_record(user_id=user.pk, name=Event.PURCHASE_STARTED, request=request,
                 data={"purchase": purchase.pk, "offer": offer.slug, "amount_cents": purchase.amount_cents,
                       "grace": not had_grace})
    if had_grace:
        from billing.tasks import charge_due

        transaction.on_commit(lambda: charge_due.apply_async(queue="billing"))
    return purchase



def _already_purchased(existing: Purchase | None) -> ApplicationError:
    state = existing.get_status_display().lower() if existing else "open"
    return ApplicationError(
        f"You already have {existing.offer.name if existing else 'a purchase'} ({state}); "
        "a second purchase is not possible while it is active. See the billing page.",
        code="already_purchased", status=409,
    )


@transaction.atomic
def purchase_cancel(*, purchase: Purchase, request=None) -> Purchase:
    """The customer's free cancel: only while the grace period is running."""
    now = clock.now()
    # The time check is part of the UPDATE, so a cancel racing the charge task at the end of grace
    # either wins (no charge) or loses cleanly (the task already moved it to `charging`).
    updated = Purchase.objects.filter(pk=purchase.pk, status=S.GRACE, grace_ends_at__gt=now).update(
        status=S.CANCELED, canceled_at=now, updated_at=now
    )
    purchase.refresh_from_db()
    if updated != 1:
        if purchase.status == S.CANCELED:
            raise ApplicationError("This purchase is already canceled.", code="already_canceled", status=409)
        ended = date_format(purchase.grace_ends_at, "DATETIME_FORMAT")
        raise ApplicationError(
            f"The free cancellation period ended on {ended} UTC, so this purchase can no longer be canceled "
            "at no charge. Contact support if you want a refund.",
            code="grace_over", status=409,
        )
    event_record(user_id=purchase.user_id, name=Event.CANCELED, request=request,
                 data={"purchase": purchase.pk, "by": "customer"})
    return purchase
