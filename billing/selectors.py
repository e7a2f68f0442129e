"""Billing's reads. Other apps ask `entitlements_for_user` what a user may do; they never read billing tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from accounts.models import User
from billing import clock
from billing.models import ChargeAttempt, Installment, Offer, PaymentProfile, Plan, Purchase, Refund
from billing.offer_defaults import FREE_PLAN
from common.versioned import VersionedCache

# Statuses that unlock the offer's plan: grace is "full access starts at once"; charging is the grace
# period's end in flight; past due keeps access while a missed installment is retried (DESIGN: only
# repeated failure suspends). Suspended, canceled and refunded fall back to the free plan at once.
ENTITLED_STATUSES = (
    Purchase.Status.GRACE, Purchase.Status.CHARGING, Purchase.Status.PAID,
    Purchase.Status.INSTALLMENTS, Purchase.Status.PAST_DUE,
)
UPGRADE_URL = "/billing/"
# Limits as Plan fields, in the order a pricing table lists them, with how each reads.
PLAN_LIMITS: tuple[tuple[str, str], ...] = (
    ("requests_per_minute", "requests per minute"),
    ("tokens_per_day", "chat tokens per day"),
    ("max_tokens_per_reply", "tokens per reply"),
    ("voice_minutes_per_day", "minutes of voice per day"),
    ("speech_characters_per_day", "characters of speech per day"),
    ("knowledge_documents", "knowledge documents"),
    ("knowledge_megabytes", "MB of knowledge documents"),
    ("api_keys", "API keys"),
)


@dataclass(frozen=True)
class Entitlements:
    """What a user's plan allows right now. `upgrade` names the plan to buy for more (None on the top plan)."""

    plan: str
    plan_name: str
    requests_per_minute: int
    tokens_per_day: int
    voice_minutes_per_day: int
    speech_characters_per_day: int
    knowledge_documents: int
    knowledge_megabytes: int
    api_keys: int
    max_tokens_per_reply: int
    upgrade: Entitlements | None = None
    upgrade_url: str = UPGRADE_URL

    @classmethod
    def of(cls, plan: Plan, upgrade: Plan | None = None) -> Entitlements:
        limits = {name: getattr(plan, name) for name, _ in PLAN_LIMITS}
        return cls(plan=plan.slug, plan_name=plan.name, **limits,
                   upgrade=cls.of(upgrade) if upgrade is not None and upgrade.slug != plan.slug else None)

    def as_dict(self) -> dict[str, object]:
        data = {"plan": self.plan, "plan_name": self.plan_name, "upgrade_url": self.upgrade_url,
                **{name: getattr(self, name) for name, _ in PLAN_LIMITS}}
        data["upgrade_plan"] = self.upgrade.plan if self.upgrade else None
        return data


def plan_free() -> Plan:
    """The free plan's row, or its defaults when the table was emptied (a flushed test database)."""
    return Plan.objects.filter(slug=Plan.FREE_SLUG).first() or Plan(slug=Plan.FREE_SLUG, **FREE_PLAN)


# Every model request asks for its user's limits. The free plan and the current offer's plan are the same
# for everyone and change only when staff edit them (billing.receivers marks them changed on commit), so
# each process keeps them; the user's own purchase is read each time (its status moves with payments).
PLANS = VersionedCache("parley:billing:plans-version")


def _plans_shared() -> tuple[Plan, Plan | None]:
    """(the free plan, the plan of the offer on sale), shared by this process's requests: read only."""
    def load() -> tuple[Plan, Plan | None]:
        offer = offer_current()
        return plan_free(), offer.plan if offer is not None else None

    return PLANS.get("plans", load)


def entitlements_for_user(*, user: User) -> Entitlements:
    """The plan of the user's entitled purchase, else the free plan; the offer's plan as the upgrade."""
    free, upgrade = _plans_shared()
    if not getattr(user, "is_authenticated", False):
        return Entitlements.of(free, upgrade)
    purchase = (
        Purchase.objects.filter(user=user, status__in=ENTITLED_STATUSES, offer__plan__isnull=False)
        .select_related("offer__plan").order_by("-id").first()
    )
    if purchase is None:
        return Entitlements.of(free, upgrade)
    return Entitlements.of(purchase.offer.plan, upgrade)


def plan_name(*, slug: str) -> str | None:
    """A plan's name as people read it ('Parley Pro' for `pro`)."""
    return Plan.objects.filter(slug=slug).values_list("name", flat=True).first()


def pricing_table() -> list[dict[str, object]]:
    """The free plan, then each active offer with its plan: name, summary, price and every limit, from the
    same rows the limits are enforced from (so the pricing page can't drift from what users get)."""
    rows: list[dict[str, object]] = [{"plan": plan_free(), "offer": None}]
    for offer in Offer.objects.filter(is_active=True, plan__isnull=False).select_related("plan").order_by("id"):
        if all(row["plan"].slug != offer.plan.slug for row in rows):
            rows.append({"plan": offer.plan, "offer": offer})
    for row in rows:
        plan = row["plan"]
        row["limits"] = [(label, getattr(plan, name)) for name, label in PLAN_LIMITS]
    return rows


def offer_current() -> Offer | None:
    return Offer.objects.filter(is_active=True).order_by("id").first()


def purchase_current_for_user(*, user: User) -> Purchase | None:
    """The user's open purchase, or else their latest one."""
    purchases = Purchase.objects.filter(user=user).select_related("offer").order_by("-id")
    return purchases.filter(status__in=Purchase.OPEN_STATUSES).first() or purchases.first()


def purchase_had_grace(*, user: User) -> bool:
    """Whether the user had a grace period already (their next purchase is charged at once)."""
    return Purchase.objects.filter(user=user).exists()


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
