"""Billing's tables: the offer, a user's purchase and its installments, and the charge ledger.

Every state change on these rows goes through billing.services as a guarded UPDATE; nothing here
writes on save.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from common.models import TimeStampedModel


class Plan(TimeStampedModel):
    """What a user may do: the free plan (slug `free`) for everyone, and the plan an offer grants.

    Every number is a limit another app enforces where a request enters (inference for chat, voice and
    /v1; knowledge for uploads; accounts for API keys), read through billing.selectors.entitlements_for_user.
    Which models a plan includes is not here: each model and route says which plans may use it
    (inference's access rule), so there is one rule per model, and the pricing table reads it from there.
    """

    FREE_SLUG = "free"

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    summary = models.CharField(max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order on the pricing table.")
    requests_per_minute = models.PositiveIntegerField()
    tokens_per_day = models.PositiveIntegerField(help_text="Chat tokens (prompt and reply) per day.")
    voice_minutes_per_day = models.PositiveIntegerField(help_text="Minutes of speech transcribed per day.")
    speech_characters_per_day = models.PositiveIntegerField(help_text="Characters spoken back per day.")
    knowledge_documents = models.PositiveIntegerField(help_text="Documents a user may keep.")
    knowledge_megabytes = models.PositiveIntegerField(help_text="Megabytes of documents a user may keep.")
    api_keys = models.PositiveIntegerField(help_text="Active API keys a user may hold.")
    max_tokens_per_reply = models.PositiveIntegerField()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class Offer(TimeStampedModel):
    """What a user can buy. Prices are in the currency's smallest unit (cents)."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    summary = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default="usd")
    price_cents = models.PositiveIntegerField()
    grace_hours = models.PositiveIntegerField(default=24)
    reminder_hours_before = models.PositiveIntegerField(default=2)
    installment_count = models.PositiveIntegerField(default=100)
    installment_cents = models.PositiveIntegerField(default=1999)
    installment_interval_days = models.PositiveIntegerField(default=7)
    # Days after a missed due date on which the installment is tried again; then access is suspended.
    retry_delays_days = models.JSONField(default=list)
    terms_version = models.CharField(max_length=32)
    terms_text = models.TextField()
    # What the offer unlocks, read by other apps through billing.selectors.entitlements_for_user.
    plan = models.ForeignKey(Plan, null=True, on_delete=models.PROTECT, related_name="offers")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # The fallback must collect exactly the price: 100 × $19.99 = $1999.
            models.CheckConstraint(
                condition=Q(price_cents=F("installment_count") * F("installment_cents")),
                name="billing_offer_installments_add_up",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PaymentProfile(TimeStampedModel):
    """A user's Stripe customer and the card charges go to (mirrored in dj-stripe's tables too)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payment_profile")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    payment_method_id = models.CharField(max_length=255, blank=True)
    card_brand = models.CharField(max_length=32, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return f"{self.user} ({self.stripe_customer_id})"

    @property
    def has_card(self) -> bool:
        return bool(self.payment_method_id)


class Purchase(TimeStampedModel):
    class Status(models.TextChoices):
        GRACE = "grace", "Grace period"
        CHARGING = "charging", "Charging"
        PAID = "paid", "Paid"
        INSTALLMENTS = "installments", "Paying in installments"
        PAST_DUE = "past_due", "Past due"
        SUSPENDED = "suspended", "Suspended"
        CANCELED = "canceled", "Canceled"
        REFUNDED = "refunded", "Refunded"

    # A user holds at most one purchase in these states; they also grant the offer's entitlements
    # (except SUSPENDED, see selectors).
    OPEN_STATUSES = (Status.GRACE, Status.CHARGING, Status.PAID, Status.INSTALLMENTS, Status.PAST_DUE, Status.SUSPENDED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="purchases")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.GRACE)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    started_at = models.DateTimeField()
    grace_ends_at = models.DateTimeField()
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    terms_version = models.CharField(max_length=32)
    terms_accepted_at = models.DateTimeField()
    installment_interval_days = models.PositiveIntegerField()
    paid_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    refunded_cents = models.PositiveIntegerField(default=0)
    # The latest problem in words the billing page shows (a decline, a needed authentication).
    last_problem = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["grace", "charging", "paid", "installments", "past_due", "suspended"]),
                name="billing_one_open_purchase_per_user",
            ),
        ]
        indexes = [models.Index(fields=["status", "grace_ends_at"], name="billing_purchase_due")]

    def __str__(self) -> str:
        return f"Purchase {self.pk} of {self.offer} by {self.user} ({self.status})"


class Installment(TimeStampedModel):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        CHARGING = "charging", "Charging"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed (retries used up)"
        CANCELED = "canceled", "Canceled"

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="installments")
    number = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField()
    due_at = models.DateTimeField()
    # When the charge task next tries it: the due date, then the retry dates after a failure.
    next_attempt_at = models.DateTimeField()
    failures = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["purchase_id", "number"]
        constraints = [models.UniqueConstraint(fields=["purchase", "number"], name="billing_installment_number")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="billing_installment_due")]

    def __str__(self) -> str:
        return f"Installment {self.number} of purchase {self.purchase_id} ({self.status})"


class ChargeAttempt(TimeStampedModel):
    """One try at moving money: a ledger row written before Stripe is called, with its own key."""

    class Kind(models.TextChoices):
        FULL = "full", "Full price"
        INSTALLMENT = "installment", "Installment"

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Declined"
        REQUIRES_ACTION = "requires_action", "Needs authentication"

    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="attempts")
    installment = models.ForeignKey(
        Installment, null=True, blank=True, on_delete=models.PROTECT, related_name="attempts"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    # Derived from the ledger (purchase, installment, try number), so a second worker or beat
    # computing the same key collides here instead of at Stripe.
    idempotency_key = models.CharField(max_length=200, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SENDING)
    decline_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    on_session = models.BooleanField(default=False, help_text="The customer started it (pay what is due now).")
    # Where the outcome came from: the worker, the reconciler, a webhook or the customer's return.
    settled_by = models.CharField(max_length=16, blank=True)
    sent_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    refunded_cents = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-sent_at", "-id"]
        indexes = [models.Index(fields=["status", "sent_at"], name="billing_attempt_status")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ${self.amount_cents / 100:.2f} ({self.status})"


class Refund(TimeStampedModel):
    attempt = models.ForeignKey(ChargeAttempt, on_delete=models.PROTECT, related_name="refunds")
    amount_cents = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Refund ${self.amount_cents / 100:.2f} of attempt {self.attempt_id}"


class WebhookReceipt(models.Model):
    """A Stripe event Parley acted on, keyed by the event id so a redelivery is a no-op."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    attempt = models.ForeignKey(ChargeAttempt, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
