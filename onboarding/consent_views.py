"""Consent (the banner's and settings' form post), the privacy page, and the browser's event endpoint.

`POST /api/analytics/events` is a plain Django view, not DRF: it takes no API key and no session
CSRF token (`navigator.sendBeacon` can't send a header), it only appends anonymous counting rows,
and it refuses without consent, so there is nothing for a forged cross-site post to gain.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from common.errors import ApplicationError
from onboarding.models import AnalyticsEvent, ConsentChoice, ConsentRecord
from onboarding.services import CONSENT_COOKIE, analytics_allowed, consent_choice, privacy_signal
from onboarding.services.consent import (
    CONSENT_COOKIE_MAX_AGE,
    POSTABLE_SOURCES,
    analytics_events_ingest,
    analytics_ingest_throttle,
    browser_events_parse,
    consent_set,
)

SIGNAL_NAMES = {"gpc": "Global Privacy Control", "dnt": "Do Not Track"}
BODY_TYPES = ("application/json", "text/plain")


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _error(code: str, message: str, status: int, **extra: object) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return "/privacy/"


def _saved_message(*, asked: str, saved) -> str:
    if saved.signal:
        why = SIGNAL_NAMES[saved.signal]
        if asked == ConsentChoice.ANALYTICS:
            return (f"Your browser sends {why}, so Parley saved “Necessary only”: no analytics run while it "
                    "does, whatever the banner says.")
        return f"Your browser sends {why}, so Parley runs no analytics for you and won't ask."
    if saved.choice == ConsentChoice.ANALYTICS:
        return "Saved: analytics allowed. You can withdraw this any time under Privacy settings."
    return "Saved: necessary only. Parley runs no analytics for you."


@require_POST
def privacy_consent(request: HttpRequest) -> HttpResponse:
    """Store the visitor's choice (CSRF protected: it is a form post from our own pages)."""
    asked = request.POST.get("choice", "")
    source = request.POST.get("source", ConsentRecord.Source.SETTINGS)
    try:
        if source not in POSTABLE_SOURCES:
            raise ApplicationError(f"source must be one of: {', '.join(POSTABLE_SOURCES)}.", code="invalid_source")
        saved = consent_set(choice=asked, source=source, request=request, user=request.user,
                            signal=request.POST.get("signal", ""))
    except ApplicationError as exc:
        if _wants_json(request):
            return _error(exc.code, exc.message, exc.status)
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
    message = _saved_message(asked=asked, saved=saved)
    if _wants_json(request):
        response = JsonResponse({"choice": saved.choice, "source": saved.source, "signal": saved.signal,
                                 "message": message})
    else:
        messages.info(request, message)
        response = redirect(_next_url(request))
    # HttpOnly: the scripts learn the choice from the page (json_script), never from the cookie.
    response.set_cookie(CONSENT_COOKIE, saved.cookie, max_age=CONSENT_COOKIE_MAX_AGE, samesite="Lax",
                        secure=request.is_secure(), httponly=True)
    return response


# What each stored field is and why it is kept; the privacy page lists them from the model, and a test
# checks that every field of AnalyticsEvent is described here, so a new column can't go unmentioned.
EVENT_FIELD_PURPOSES: dict[str, tuple[str, str]] = {
    "id": ("A row number.", "To store the row."),
    "at": ("The time of the event.", "Visits and use over time."),
    "name": ("What happened: a page view, a button used, or an action such as “chat sent”.",
             "Which features are used, and funnels between them."),
    "source": ("Whether the browser or the server reported it.", "To tell page views from actions."),
    "path": ("The page's path, without its query string.", "Which pages are read."),
    "referrer_host": ("The site that linked to the page (its host name only, not the full address).",
                      "Where visitors come from."),
    "utm_source": ("The utm_source of a campaign link, when the page address had one.", "Which campaigns work."),
    "utm_medium": ("The utm_medium of a campaign link.", "Which campaigns work."),
    "utm_campaign": ("The utm_campaign of a campaign link.", "Which campaigns work."),
    "utm_term": ("The utm_term of a campaign link.", "Which campaigns work."),
    "utm_content": ("The utm_content of a campaign link.", "Which campaigns work."),
    "device": ("Desktop, mobile, tablet or bot, guessed from the browser's user agent; the user agent itself is "
               "not stored.", "Whether pages must work better on phones."),
    "country": ("The country of the address, when the operator installed a GeoIP file; the address itself is "
                "not stored.", "Where Parley is used."),
    "visitor": ("A hash of the address and user agent under a random salt that changes every day and is "
                "never stored with the events.", "Counting visitors within one day, never following them "
                "across days."),
    "user": ("Your account, when you are signed in.", "Active users, retention and funnels."),
    "team": ("Your team, for actions taken in a team.", "Which teams use which features."),
    "plan": ("Your plan at the time, when you are signed in.", "Funnels broken down by plan."),
    "props": ("A few details of the action (for example which assistant kind or how many sources), never "
              "message text, prompts or file contents.", "Understanding how a feature is used."),
}


@require_GET
def privacy_page(request: HttpRequest) -> HttpResponse:
    fields = [{"name": field.name, "label": field.verbose_name, "what": EVENT_FIELD_PURPOSES[field.name][0],
               "why": EVENT_FIELD_PURPOSES[field.name][1]} for field in AnalyticsEvent._meta.get_fields()
              if field.concrete]
    user_id = request.user.pk if request.user.is_authenticated else None
    return render(request, "onboarding/privacy.html", {
        "policy_version": settings.PARLEY_ANALYTICS_POLICY_VERSION,
        "retention_days": settings.PARLEY_ANALYTICS_RETENTION_DAYS,
        "umami": bool(settings.UMAMI_URL),
        "geoip": bool(settings.PARLEY_ANALYTICS_GEOIP_PATH),
        "fields": fields,
        "choice": consent_choice(request=request, user_id=user_id),
        "signal": privacy_signal(request),
        "signal_name": SIGNAL_NAMES.get(privacy_signal(request), ""),
        "consent_cookie": CONSENT_COOKIE,
        "session_cookie": settings.SESSION_COOKIE_NAME,
        "csrf_cookie": settings.CSRF_COOKIE_NAME,
        "cookie_days": CONSENT_COOKIE_MAX_AGE // 86400,
        "max_batch": settings.PARLEY_ANALYTICS_MAX_BATCH,
    })


@csrf_exempt
@require_POST
def analytics_events(request: HttpRequest) -> HttpResponse:
    """A batch of page views and UI events from the browser (sendBeacon): 202 {"stored": n}."""
    if not request.headers.get("User-Agent", "").strip():
        # As Umami does: a request without a user agent is a script, not a visitor.
        return _error("user_agent_required", "A User-Agent header is required.", 400)
    signal = privacy_signal(request)
    if signal:
        return _error("do_not_track", f"Your browser sends {SIGNAL_NAMES[signal]}: Parley records no analytics "
                                      "events for it.", 403)
    limit = settings.PARLEY_ANALYTICS_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _error("body_too_large", f"The body may be at most {limit} bytes; this was {declared}.", 413,
                      limit=limit)
    retry_after = analytics_ingest_throttle(request=request)
    if retry_after:
        response = _error("rate_limited", f"At most {settings.PARLEY_ANALYTICS_RATE_PER_MINUTE} requests a minute; "
                                          f"try again in {retry_after} s.", 429, retry_after=retry_after)
        response["Retry-After"] = str(retry_after)
        return response
    if not analytics_allowed(request=request):
        return _error("consent_required", "No analytics consent: choose “Allow analytics” under Privacy settings "
                                          "first.", 403)
    content_type = request.content_type or ""
    if content_type not in BODY_TYPES:
        return _error("unsupported_media_type", f"Send the body as {' or '.join(BODY_TYPES)}, not "
                                                f"{content_type or 'no content type'}.", 415)
    body = request.body
    if len(body) > limit:
        return _error("body_too_large", f"The body may be at most {limit} bytes; this was {len(body)}.", 413,
                      limit=limit)
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error("invalid_json", f"The body is not valid JSON: {exc}.", 400)
    try:
        events = browser_events_parse(payload)
    except ApplicationError as exc:
        return _error(exc.code, exc.message, exc.status, **exc.extra)
    stored = analytics_events_ingest(request=request, events=events)
    return JsonResponse({"stored": len(stored)}, status=202)


def _reject_constant(name: str) -> float:
    # NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
    raise ValueError(f"{name} is not allowed")
