from __future__ import annotations

from decimal import Decimal

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path

from billing import selectors, services
from billing.forms import CadenceForm, RefundForm
from billing.models import (
    ChargeAttempt,
    Installment,
    Offer,
    PaymentProfile,
    Plan,
    Purchase,
    Refund,
    WebhookReceipt,
)
from common.display import money_from_cents
from common.errors import ApplicationError


def _money(field: str, description: str, currency_of=lambda obj: obj.currency):
    """A list column showing a cents field as money in the row's currency, sortable by the field."""

    @admin.display(description=description, ordering=field)
    def column(self, obj) -> str:
        return money_from_cents(getattr(obj, field), currency_of(obj))

    return column


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    """Every limit here is enforced where requests enter; a change applies to the next request."""

    list_display = ["name", "slug", "requests_per_minute", "tokens_per_day", "max_tokens_per_reply",
                    "voice_minutes_per_day", "knowledge_documents", "knowledge_megabytes", "api_keys"]
    list_editable = ["requests_per_minute", "tokens_per_day", "max_tokens_per_reply", "voice_minutes_per_day",
                     "knowledge_documents", "knowledge_megabytes", "api_keys"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "plan", "price", "installment_count", "installment", "terms_version", "is_active"]
    price = _money("price_cents", "Price")
    installment = _money("installment_cents", "Installment")


@admin.register(PaymentProfile)
class PaymentProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "stripe_customer_id", "card_brand", "card_last4"]
    search_fields = ["user__email", "stripe_customer_id"]
    readonly_fields = [f.name for f in PaymentProfile._meta.fields]


class ChargeAttemptInline(admin.TabularInline):
    model = ChargeAttempt
    extra = 0
    can_delete = False
    fields = ["sent_at", "kind", "installment", "amount", "status", "decline_code", "failure_message",
              "payment_intent_id", "idempotency_key", "settled_by", "refunded"]
    readonly_fields = fields
    ordering = ["-sent_at"]
    amount = _money("amount_cents", "Amount")
    refunded = _money("refunded_cents", "Refunded")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class InstallmentInline(admin.TabularInline):
    model = Installment
    extra = 0
    can_delete = False
    fields = ["number", "amount", "due_at", "next_attempt_at", "failures", "status", "paid_at"]
    readonly_fields = fields
    classes = ["collapse"]
    amount = _money("amount_cents", "Amount", lambda installment: installment.purchase.currency)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Purchase)
class PurchaseAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "offer", "status", "amount", "grace_ends_at", "refunded", "created_at"]
    list_select_related = ["user", "offer"]
    amount = _money("amount_cents", "Amount")
    refunded = _money("refunded_cents", "Refunded")
    list_filter = ["status", "offer"]
    search_fields = ["user__email"]
    readonly_fields = [f.name for f in Purchase._meta.fields]
    inlines = [ChargeAttemptInline, InstallmentInline]
    actions = ["refund", "cancel_plan", "retry_now", "change_cadence"]
    change_list_template = "admin/billing/purchase/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False  # purchases start at checkout, with the customer's agreement to the terms

    def get_urls(self):
        report = path("report/", self.admin_site.admin_view(self.report_view), name="billing_purchase_report")
        return [report, *super().get_urls()]

    def report_view(self, request: HttpRequest) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "title": "Daily revenue and failures",
                   "rows": selectors.revenue_by_day(days=30), "opts": self.model._meta}
        return render(request, "admin/billing/report.html", context)

    @admin.action(description="Refund (full or partial, through Stripe)")
    def refund(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if "apply" in request.POST:
            form = RefundForm(request.POST)
            if form.is_valid():
                amount = form.cleaned_data["amount"]
                cents = int((amount * 100).to_integral_value()) if isinstance(amount, Decimal) else None
                for purchase in queryset:
                    self._run(request, lambda p=purchase: services.purchase_refund(
                        purchase=p, amount_cents=cents, by=request.user, reason=form.cleaned_data["reason"]),
                        f"Refunded purchase {purchase.pk}.")
                return None
        else:
            form = RefundForm()
        return self._intermediate(request, queryset, form, "refund", "Refund")

    @admin.action(description="Cancel plan (no further charges)")
    def cancel_plan(self, request: HttpRequest, queryset) -> None:
        for purchase in queryset:
            self._run(request, lambda p=purchase: services.purchase_cancel_by_staff(purchase=p),
                      f"Canceled purchase {purchase.pk}.")

    @admin.action(description="Retry missed installments now")
    def retry_now(self, request: HttpRequest, queryset) -> None:
        from billing.tasks import charge_due

        for purchase in queryset:
            self._run(request, lambda p=purchase: services.purchase_retry_now(purchase=p),
                      f"Purchase {purchase.pk}: missed installments are due now.")
        charge_due.delay()

    @admin.action(description="Change installment cadence")
    def change_cadence(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if "apply" in request.POST:
            form = CadenceForm(request.POST)
            if form.is_valid():
                for purchase in queryset:
                    self._run(request, lambda p=purchase: services.purchase_cadence_change(
                        purchase=p, interval_days=form.cleaned_data["interval_days"]),
                        f"Purchase {purchase.pk}: installments every {form.cleaned_data['interval_days']} days.")
                return None
        else:
            form = CadenceForm(initial={"interval_days": 7})
        return self._intermediate(request, queryset, form, "change_cadence", "Change cadence")

    def _run(self, request: HttpRequest, operation, success: str) -> None:
        try:
            operation()
        except ApplicationError as exc:
            self.message_user(request, exc.message, level=messages.ERROR)
        else:
            self.message_user(request, success, level=messages.SUCCESS)

    def _intermediate(self, request, queryset, form, action: str, title: str) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "title": title, "form": form, "purchases": queryset,
                   "action": action, "opts": self.model._meta,
                   "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)}
        return render(request, "admin/billing/action_form.html", context)


@admin.register(ChargeAttempt)
class ChargeAttemptAdmin(admin.ModelAdmin):
    list_display = ["id", "purchase", "kind", "amount", "status", "decline_code", "payment_intent_id", "sent_at"]
    amount = _money("amount_cents", "Amount")
    list_filter = ["status", "kind"]
    search_fields = ["payment_intent_id", "idempotency_key", "purchase__user__email"]
    readonly_fields = [f.name for f in ChargeAttempt._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the ledger is append-only


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["id", "attempt", "amount", "stripe_refund_id", "created_by", "created_at"]
    list_select_related = ["attempt", "created_by"]
    amount = _money("amount_cents", "Amount", lambda refund: refund.attempt.currency)
    readonly_fields = [f.name for f in Refund._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(WebhookReceipt)
class WebhookReceiptAdmin(admin.ModelAdmin):
    list_display = ["event_id", "type", "object_id", "attempt", "note", "received_at"]
    list_filter = ["type"]
    readonly_fields = [f.name for f in WebhookReceipt._meta.fields]
