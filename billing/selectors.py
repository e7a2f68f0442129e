"""Billing's reads. Other apps ask `entitlements_for_user` what a user may do; they never read billing tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import User
from billing import clock
from billing.models import ChargeAttempt, Installment, Offer, PaymentProfile, Purchase, Refund

# What everyone gets without a purchase. Apps read keys they know and ignore the rest.
FREE_ENTITLEMENTS: dict[str, object] = {"plan": "free"}
# Statuses that unlock the offer: grace is "full access starts at once"; past due keeps access
# while retries run; suspended does not.
ENTITLED_STATUSES = (
    Purchase.Status.GRACE, Purchase.Status.CHARGING, Purchase.Status.PAID,
    Purchase.Status.INSTALLMENTS, Purchase.Status.PAST_DUE,
)


def entitlements_for_user(*, user: User) -> dict[str, object]:
    if not user.is_authenticated:
        return dict(FREE_ENTITLEMENTS)
    purchase = (
        Purchase.objects.filter(user=user, status__in=ENTITLED_STATUSES).select_related("offer").order_by("-id").first()
    )
    if purchase is None:
        return dict(FREE_ENTITLEMENTS)
    return {**FREE_ENTITLEMENTS, **purchase.offer.entitlements}


def offer_current() -> Offer | None:
    return Offer.objects.filter(is_active=True).order_by("id").first()


def purchase_current_for_user(*, user: User) -> Purchase | None:
    """The user's open purchase, or else their latest one."""
    purchases = Purchase.objects.filter(user=user).select_related("offer").order_by("-id")
    return purchases.filter(status__in=Purchase.OPEN_STATUSES).first() or purchases.first()


def purchase_get_for_user(*, user: User, purchase_id: int) -> Purchase | None:
    """A purchase only its owner may see (None for anyone else, which views turn into a 404)."""
    return Purchase.objects.filter(pk=purchase_id, user=user).select_related("offer").first()


def attempt_get_for_user(*, user: User, attempt_id: int) -> ChargeAttempt | None:
    return (
        ChargeAttempt.objects.filter(pk=attempt_id, purchase__user=user)
        .select_related("purchase__offer", "installment").first()
    )


def payment_profile_for_user(*, user: User) -> PaymentProfile | None:
    return PaymentProfile.objects.filter(user=user).first()


def attempts_for_user(*, user: User) -> QuerySet[ChargeAttempt]:
    """The full payment history, newest first."""
    return (
        ChargeAttempt.objects.filter(purchase__user=user)
        .select_related("installment", "purchase__offer").prefetch_related("refunds").order_by("-sent_at", "-id")
    )


def installment_summary(*, purchase: Purchase) -> dict[str, object]:
    rows = purchase.installments.aggregate(
        paid=Count("id", filter=Q(status=Installment.Status.PAID)),
        remaining=Count("id", filter=Q(status__in=(Installment.Status.SCHEDULED, Installment.Status.CHARGING,
                                                   Installment.Status.FAILED))),
        paid_cents=Sum("amount_cents", filter=Q(status=Installment.Status.PAID)),
        total=Count("id"),
    )
    upcoming = purchase.installments.filter(status=Installment.Status.SCHEDULED).order_by("next_attempt_at").first()
    overdue = purchase.installments.filter(
        status__in=(Installment.Status.SCHEDULED, Installment.Status.FAILED), due_at__lte=clock.now()
    ).order_by("number")
    return {**rows, "paid_cents": rows["paid_cents"] or 0, "next": upcoming, "overdue": list(overdue)}


def attempt_needing_action_for_user(*, user: User) -> ChargeAttempt | None:
    """The latest attempt waiting for the customer's authentication, if it is still the live one."""
    attempt = (
        ChargeAttempt.objects.filter(purchase__user=user, status=ChargeAttempt.Status.REQUIRES_ACTION,
                                     kind=ChargeAttempt.Kind.INSTALLMENT)
        .select_related("installment").order_by("-sent_at", "-id").first()
    )
    if attempt is None or not attempt_is_live(attempt=attempt):
        return None
    return attempt


def attempt_is_live(*, attempt: ChargeAttempt) -> bool:
    """Only the newest attempt of an unpaid installment may still be completed by the customer."""
    if attempt.installment_id is None:
        return False
    installment = attempt.installment
    if installment.status == Installment.Status.PAID:
        return False
    return not ChargeAttempt.objects.filter(installment=installment, sent_at__gt=attempt.sent_at).exists()


def revenue_by_day(*, days: int = 30) -> list[dict[str, object]]:
    """Collected, refunded and failed per day (UTC), newest first, for the admin report."""
    since: datetime = clock.now() - timedelta(days=days)
    attempts = (
        ChargeAttempt.objects.filter(sent_at__gte=since)
        .annotate(day=TruncDate("sent_at"))
        .values("day")
        .annotate(
            collected=Sum("amount_cents", filter=Q(status=ChargeAttempt.Status.SUCCEEDED)),
            succeeded=Count("id", filter=Q(status=ChargeAttempt.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=ChargeAttempt.Status.FAILED)),
            needs_action=Count("id", filter=Q(status=ChargeAttempt.Status.REQUIRES_ACTION)),
            sending=Count("id", filter=Q(status=ChargeAttempt.Status.SENDING)),
        )
    )
    refunds = dict(
        Refund.objects.filter(created_at__gte=since).annotate(day=TruncDate("created_at"))
        .values("day").annotate(total=Sum("amount_cents")).values_list("day", "total")
    )
    rows: dict[date, dict[str, object]] = {}
    for row in attempts:
        rows[row["day"]] = {**row, "collected": row["collected"] or 0, "refunded": refunds.get(row["day"], 0)}
    for day, total in refunds.items():
        rows.setdefault(day, {"day": day, "collected": 0, "succeeded": 0, "failed": 0, "needs_action": 0,
                              "sending": 0, "refunded": total})
    return [rows[day] for day in sorted(rows, reverse=True)]


def charge_attempt_totals() -> dict[str, dict[str, int]]:
    """Attempts and their amounts per status since the start (ledger rows are never deleted), for /metrics."""
    totals = {status: {"count": 0, "cents": 0} for status in ChargeAttempt.Status.values}
    for row in ChargeAttempt.objects.order_by().values("status").annotate(count=Count("id"), cents=Sum("amount_cents")):
        totals[row["status"]] = {"count": row["count"], "cents": row["cents"] or 0}
    return totals


def charge_attempts_unsettled_count(*, older_than_seconds: int) -> int:
    """Attempts still `sending` (Stripe's answer not recorded) after `older_than_seconds`."""
    cutoff = clock.now() - timedelta(seconds=older_than_seconds)
    return ChargeAttempt.objects.filter(status=ChargeAttempt.Status.SENDING, sent_at__lt=cutoff).count()


def webhooks_unprocessed_count(*, within_hours: int = 24) -> int:
    """Signed Stripe webhooks received but not processed (their handler failed; Stripe redelivers them)."""
    from djstripe.models import WebhookEventTrigger

    since = clock.now() - timedelta(hours=within_hours)
    return WebhookEventTrigger.objects.filter(valid=True, processed=False, created__gte=since).count()
