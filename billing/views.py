from __future__ import annotations

import logging

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from djstripe.views import ProcessWebhookView

from billing import clock, selectors, services, stripe_api
from billing.forms import CheckoutForm, TestCardForm
from billing.models import ChargeAttempt, Purchase
from common.errors import ApplicationError

logger = logging.getLogger(__name__)


def _local() -> bool:
    return stripe_api.billing_mode() == "local"


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    purchase = selectors.purchase_current_for_user(user=request.user)
    now = clock.now()
    context = {
        "offer": selectors.offer_current(),
        "purchase": purchase,
        "profile": selectors.payment_profile_for_user(user=request.user),
        "attempts": list(selectors.attempts_for_user(user=request.user)[:200]),
        "needs_action": selectors.attempt_needing_action_for_user(user=request.user),
        "now": now,
        "entitlements": selectors.entitlements_for_user(user=request.user),
        "had_grace": selectors.purchase_had_grace(user=request.user),
    }
    entitlements = context["entitlements"]
    if entitlements.upgrade is not None:
        context["plan_rows"] = [(label.capitalize(), getattr(entitlements, name), getattr(entitlements.upgrade, name))
                                for name, label in selectors.PLAN_LIMITS]
    if purchase is not None:
        context["summary"] = selectors.installment_summary(purchase=purchase)
        context["grace_seconds_left"] = max(0, int((purchase.grace_ends_at - now).total_seconds()))
    return render(request, "billing/overview.html", context)


@login_required
def checkout(request: HttpRequest) -> HttpResponse:
    offer = selectors.offer_current()
    if offer is None:
        raise Http404("Nothing is on sale.")
    existing = selectors.purchase_current_for_user(user=request.user)
    if existing is not None and existing.status in Purchase.OPEN_STATUSES and request.method == "GET":
        messages.info(request, f"You already have {existing.offer.name}.")
        return redirect("billing:overview")
    profile = selectors.payment_profile_for_user(user=request.user)
    form = CheckoutForm(request.POST or None, initial={"terms_version": offer.terms_version})
    card_form = TestCardForm(request.POST or None, prefix="card") if _local() else None
    status = 200
    if request.method == "POST" and form.is_valid():
        has_card = bool(profile and profile.has_card)
        wants_new_card = card_form is not None and (bool(request.POST.get("card-number")) or not has_card)
        try:
            if wants_new_card:
                if not card_form.is_valid():
                    raise ApplicationError("Check the card details below.", code="card_form")
                if not form.cleaned_data["agree"]:
                    raise ApplicationError("Please tick the box to agree to the terms before buying.",
                                           code="terms_required")
                services.card_attach_test_card(user=request.user, **card_form.cleaned_data)
            services.purchase_create(
                user=request.user, offer=offer, terms_accepted=form.cleaned_data["agree"],
                terms_version=form.cleaned_data["terms_version"], request=request,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            status = exc.status if 400 <= exc.status < 500 else 400
        else:
            messages.success(request, f"Welcome to {offer.name}! Full access starts now.")
            return redirect("billing:overview")
    return render(request, "billing/checkout.html", {
        "offer": offer, "form": form, "card_form": card_form, "profile": profile,
        "had_grace": selectors.purchase_had_grace(user=request.user),
        "local_mode": _local(), "publishable_key": stripe_api_publishable_key(),
    }, status=status)


def stripe_api_publishable_key() -> str:
    from django.conf import settings

    return settings.STRIPE_PUBLISHABLE_KEY


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("billing:overview")


@login_required
def card(request: HttpRequest) -> HttpResponse:
    """Update the card: a test-card form in local mode, Stripe Elements otherwise."""
    profile = selectors.payment_profile_for_user(user=request.user)
    form = TestCardForm(request.POST or None) if _local() else None
    status = 200
    if request.method == "POST":
        if form is None:
            # Raw card numbers must never reach this server against real Stripe.
            return HttpResponseBadRequest("Card numbers are only accepted by the local test form.")
        if form.is_valid():
            try:
                services.card_attach_test_card(user=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
                status = exc.status if 400 <= exc.status < 500 else 400
            else:
                messages.success(request, "Your card was saved; future payments use it.")
                return redirect(_safe_next(request))
        else:
            status = 400
    return render(request, "billing/card.html", {
        "form": form, "profile": profile, "local_mode": _local(), "next": _safe_next(request),
        "publishable_key": stripe_api_publishable_key(),
    }, status=status)


@login_required
@require_POST
def card_setup_intent(request: HttpRequest) -> JsonResponse:
    """Live/test mode: a SetupIntent client secret for Stripe Elements."""
    if _local():
        return JsonResponse({"error": {"message": "Local mode uses the test card form."}}, status=400)
    try:
        return JsonResponse({"client_secret": services.card_setup_start(user=request.user)})
    except ApplicationError as exc:
        return JsonResponse({"error": {"message": exc.message, "code": exc.code}}, status=exc.status)


@login_required
def card_done(request: HttpRequest) -> HttpResponse:
    """Live/test mode: Stripe.js returns here after confirming the SetupIntent."""
    setup_intent_id = request.GET.get("setup_intent", "")
    if _local() or not setup_intent_id.startswith("seti_"):
        return HttpResponseBadRequest("Missing or unexpected setup_intent.")
    try:
        services.card_setup_finish(user=request.user, setup_intent_id=setup_intent_id)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:card")
    messages.success(request, "Your card was saved; future payments use it.")
    return redirect(_safe_next(request))


@login_required
def purchase_cancel(request: HttpRequest, purchase_id: int) -> HttpResponse:
    purchase = selectors.purchase_get_for_user(user=request.user, purchase_id=purchase_id)
    if purchase is None:
        raise Http404("No such purchase.")
    error = None
    status = 200
    if request.method == "POST":
        try:
            services.purchase_cancel(purchase=purchase, request=request)
        except ApplicationError as exc:
            error, status = exc.message, exc.status
        else:
            messages.success(request, f"{purchase.offer.name} is canceled. You were not charged.")
            return redirect("billing:overview")
    purchase.refresh_from_db()
    return render(request, "billing/cancel.html", {
        "purchase": purchase, "error": error,
        "grace_seconds_left": max(0, int((purchase.grace_ends_at - clock.now()).total_seconds())),
    }, status=status)


@login_required
@require_POST
def purchase_pay_due(request: HttpRequest, purchase_id: int) -> HttpResponse:
    purchase = selectors.purchase_get_for_user(user=request.user, purchase_id=purchase_id)
    if purchase is None:
        raise Http404("No such purchase.")
    try:
        attempts = services.purchase_pay_due_now(purchase=purchase)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing:overview")
    paid = [a for a in attempts if a.status == ChargeAttempt.Status.SUCCEEDED]
    if paid:
        messages.success(request, f"Paid ${sum(a.amount_cents for a in paid) / 100:,.2f}. Thank you!")
    for attempt in attempts:
        if attempt.status == ChargeAttempt.Status.REQUIRES_ACTION:
            return redirect("billing:authenticate", attempt_id=attempt.pk)
        if attempt.status == ChargeAttempt.Status.FAILED:
            messages.error(request, f"A ${attempt.amount_cents / 100:,.2f} payment did not go through: "
                                    f"{attempt.failure_message} Update your card and try again.")
            break
    return redirect("billing:overview")


@login_required
def attempt_authenticate(request: HttpRequest, attempt_id: int) -> HttpResponse:
    """The link in the authentication-needed email: confirm an installment with the bank."""
    attempt = selectors.attempt_get_for_user(user=request.user, attempt_id=attempt_id)
    if attempt is None:
        raise Http404("No such payment.")
    if request.GET.get("done") and not _local():
        attempt = services.charge_attempt_refresh(attempt=attempt)
    live = attempt.status == ChargeAttempt.Status.REQUIRES_ACTION and selectors.attempt_is_live(attempt=attempt)
    if request.method == "POST":
        if not _local():
            return HttpResponseBadRequest("Confirm the payment with your bank on this page.")
        if not live:
            messages.info(request, "This payment no longer needs confirming.")
            return redirect("billing:overview")
        try:
            attempt = services.charge_attempt_authenticate_local(attempt=attempt)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("billing:overview")
        if attempt.status == ChargeAttempt.Status.SUCCEEDED:
            messages.success(request, f"Payment of ${attempt.amount_cents / 100:,.2f} confirmed. Thank you!")
        return redirect("billing:overview")
    client_secret = ""
    if live and not _local():
        client_secret = stripe_api.payment_intent_retrieve(payment_intent_id=attempt.payment_intent_id)["client_secret"]
    return render(request, "billing/authenticate.html", {
        "attempt": attempt, "live": live, "local_mode": _local(), "client_secret": client_secret,
        "publishable_key": stripe_api_publishable_key(),
    })


_process_webhook = ProcessWebhookView.as_view()


@csrf_exempt
def stripe_webhook(request: HttpRequest, uuid) -> HttpResponse:
    """dj-stripe's webhook view, minus its DEBUG-only way to swap the signing secret by header."""
    if "x-djstripe-webhook-secret" in request.headers:
        return HttpResponseBadRequest("Signature override headers are not accepted.")
    try:
        return _process_webhook(request, uuid=uuid)
    except stripe.InvalidRequestError as exc:
        if exc.http_status != 404:
            raise
        # A signed event about an object Stripe can't find for us (deleted since, or another
        # mode's): nothing to mirror. Acknowledged, or Stripe would retry it for days.
        logger.warning("Stripe webhook refers to an object Stripe does not have (%s); acknowledged", exc)
        return HttpResponse(status=200)
