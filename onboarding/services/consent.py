"""Consent writes: a visitor's or user's analytics choice, and the browser events it allows.

`consent_set` is the one writer of `Consent` and `ConsentRecord`. It appends a record for every
choice (the proof the law asks for: who, what, when, under which policy version) and, for a
signed-in user, updates their current choice. A `DNT: 1` / `Sec-GPC: 1` request, or a signal the
browser itself reports (`navigator.globalPrivacyControl` has no header in some browsers), turns an
"analytics" choice into "necessary": the signal wins whatever the banner said, and the record says so.

`analytics_events_ingest` stores a validated batch from `POST /api/analytics/events` with one
consent check and one INSERT, whatever the batch size.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from common.errors import ApplicationError
from common.redis_connection import redis_client
from onboarding.models import AnalyticsEvent, Consent, ConsentChoice, ConsentRecord
from onboarding.services.analytics import (
    _plan_of,
    analytics_event_build,
    consent_cookie_value,
    consent_from_cookie,
    privacy_signal,
    visitor_hash,
)
from onboarding.services.umami import umami_forward_enqueue

if TYPE_CHECKING:
    from accounts.models import User

SIGNALS = ("dnt", "gpc")
# What a visitor may post; `sign_in` is only ever written by the sign-in receiver.
POSTABLE_SOURCES = (ConsentRecord.Source.BANNER, ConsentRecord.Source.SETTINGS, ConsentRecord.Source.SIGNAL)
# A year, like most consent banners: long enough not to nag, and a policy version change asks again anyway.
CONSENT_COOKIE_MAX_AGE = 365 * 86400


@dataclass(frozen=True)
class ConsentSaved:
    """What was stored: the choice after any signal, why, and the consent cookie's new value."""

    choice: str
    source: str
    signal: str
    cookie: str

    @property
    def overridden(self) -> bool:
        return bool(self.signal) and self.choice == ConsentChoice.NECESSARY


def _subject_user(user: User | None) -> User | None:
    return user if user is not None and user.is_authenticated else None


def consent_set(*, choice: str, source: str, request: HttpRequest | None = None, user: User | None = None,
                signal: str = "") -> ConsentSaved:
    """Record a choice (and a signed-in user's current choice); return what to put in the consent cookie."""
    if choice not in ConsentChoice.values:
        raise ApplicationError(f"choice must be one of: {', '.join(ConsentChoice.values)}.", code="invalid_choice")
    if source not in ConsentRecord.Source.values:
        raise ApplicationError(f"source must be one of: {', '.join(ConsentRecord.Source.values)}.",
                               code="invalid_source")
    if signal not in ("", *SIGNALS):
        raise ApplicationError(f"signal must be empty or one of: {', '.join(SIGNALS)}.", code="invalid_signal")
    signal = privacy_signal(request) or signal
    if source == ConsentRecord.Source.SIGNAL and not signal:
        raise ApplicationError("source signal needs a signal (dnt or gpc) from the browser.", code="invalid_signal")
    if signal:
        # The browser said "don't track me": no banner click overrides that.
        choice = ConsentChoice.NECESSARY
        if source != ConsentRecord.Source.SIGN_IN:
            source = ConsentRecord.Source.SIGNAL
    user = _subject_user(user if user is not None else getattr(request, "user", None))
    cookie = consent_from_cookie(request)
    cookie_value = consent_cookie_value(choice=choice, subject=cookie.subject if cookie else None)
    subject = f"user:{user.pk}" if user is not None else cookie_value.rsplit(".", 1)[1]
    version, now = settings.PARLEY_ANALYTICS_POLICY_VERSION, timezone.now()
    with transaction.atomic():
        ConsentRecord.objects.create(subject=subject, user=user, choice=choice, source=source,
                                     policy_version=version, signal=signal, created_at=now)
        if user is not None:
            Consent.objects.update_or_create(user=user, defaults={"choice": choice, "policy_version": version,
                                                                  "decided_at": now})
    return ConsentSaved(choice=choice, source=source, signal=signal, cookie=cookie_value)


def consent_adopt_on_sign_in(*, request: HttpRequest, user: User) -> ConsentSaved | None:
    """At sign-in, keep the choice the visitor made before signing in, unless the user already has one
    under the current policy version (their profile wins: it is what they chose on their account)."""
    cookie = consent_from_cookie(request)
    version = settings.PARLEY_ANALYTICS_POLICY_VERSION
    if cookie is None or cookie.policy_version != version:
        return None
    if Consent.objects.filter(user=user, policy_version=version).exists():
        return None
    return consent_set(choice=cookie.choice, source=ConsentRecord.Source.SIGN_IN, request=request, user=user)


# ----------------------------------------------------------------------------- browser events

EVENT_NAME = re.compile(r"[a-z0-9_.:-]{1,64}")
EVENT_FIELDS = {"name", "path", "url", "referrer", "props"}
MAX_PROPS = 20
MAX_PROP_KEY = 64
MAX_PROP_TEXT = 200
MAX_URL = 2000
MAX_PATH = 300


@dataclass(frozen=True)
class BrowserEvent:
    name: str
    path: str
    url: str
    referrer: str
    props: dict


def _text(value: object, *, field: str, limit: int, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise ApplicationError(f"{field} is required.", code="invalid_event")
        return ""
    if not isinstance(value, str):
        raise ApplicationError(f"{field} must be a string.", code="invalid_event")
    if len(value) > limit:
        raise ApplicationError(f"{field} must be at most {limit} characters.", code="invalid_event")
    return value


def _props(value: object, *, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApplicationError(f"{field} must be an object.", code="invalid_event")
    if len(value) > MAX_PROPS:
        raise ApplicationError(f"{field} may hold at most {MAX_PROPS} values.", code="invalid_event")
    for key, item in value.items():
        if len(key) > MAX_PROP_KEY:
            raise ApplicationError(f"{field} keys must be at most {MAX_PROP_KEY} characters.", code="invalid_event")
        if isinstance(item, str):
            if len(item) > MAX_PROP_TEXT:
                raise ApplicationError(f"{field}.{key} must be at most {MAX_PROP_TEXT} characters.",
                                       code="invalid_event")
        elif item is not None and not isinstance(item, int | float | bool):
            raise ApplicationError(f"{field}.{key} must be a string, number, true, false or null.",
                                   code="invalid_event")
    return value


def browser_events_parse(payload: object) -> list[BrowserEvent]:
    """The batch's events, validated; an ApplicationError names the first bad field (events[2].name)."""
    if not isinstance(payload, dict) or "events" not in payload:
        raise ApplicationError('The body must be a JSON object with an "events" list.', code="invalid_body")
    raw = payload["events"]
    if not isinstance(raw, list):
        raise ApplicationError("events must be a list.", code="invalid_body")
    limit = settings.PARLEY_ANALYTICS_MAX_BATCH
    if not raw:
        raise ApplicationError("events must hold at least one event.", code="invalid_body")
    if len(raw) > limit:
        raise ApplicationError(f"events may hold at most {limit} events per request; this had {len(raw)}.",
                               code="batch_too_large", status=413, extra={"limit": limit})
    events = []
    for index, item in enumerate(raw):
        where = f"events[{index}]"
        if not isinstance(item, dict):
            raise ApplicationError(f"{where} must be an object.", code="invalid_event")
        unknown = sorted(set(item) - EVENT_FIELDS)
        if unknown:
            raise ApplicationError(f"{where}.{unknown[0]} is not a known field (allowed: "
                                   f"{', '.join(sorted(EVENT_FIELDS))}).", code="invalid_event")
        name = _text(item.get("name"), field=f"{where}.name", limit=64, required=True)
        if not EVENT_NAME.fullmatch(name):
            raise ApplicationError(f"{where}.name must be 1-64 characters of a-z, 0-9 and _ . : -",
                                   code="invalid_event")
        path = _text(item.get("path"), field=f"{where}.path", limit=MAX_PATH, required=True)
        if not path.startswith("/"):
            raise ApplicationError(f"{where}.path must be the page's path, starting with /.", code="invalid_event")
        events.append(BrowserEvent(
            name=name,
            # The query string and fragment can carry personal data (search terms, tokens): only the path stays.
            path=path.split("?", 1)[0].split("#", 1)[0],
            url=_text(item.get("url"), field=f"{where}.url", limit=MAX_URL),
            referrer=_text(item.get("referrer"), field=f"{where}.referrer", limit=MAX_URL),
            props=_props(item.get("props"), field=f"{where}.props"),
        ))
    return events


def analytics_events_ingest(*, request: HttpRequest, events: list[BrowserEvent]) -> list[AnalyticsEvent]:
    """Store a consented batch of browser events with one INSERT. The caller checked consent once
    (`analytics_allowed`); the plan is read once per batch, not per event."""
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    plan, now = _plan_of(user_id), timezone.now()
    rows = [analytics_event_build(name=event.name, source=AnalyticsEvent.Source.BROWSER, at=now, request=request,
                                  user_id=user_id, path=event.path, referrer=event.referrer, url=event.url,
                                  plan=plan, props=event.props)
            for event in events]
    with transaction.atomic():
        stored = AnalyticsEvent.objects.bulk_create(rows)
        umami_forward_enqueue(event_ids=[row.pk for row in stored])
    return stored


def analytics_ingest_throttle(*, request: HttpRequest) -> int:
    """Count this request against its visitor's budget for the minute; 0 when allowed, else the seconds
    until the next minute starts (the Retry-After). The key is the salted visitor hash (IP + user agent),
    so no address is written to Redis either."""
    now = time.time()
    minute = int(now // 60)
    key = f"parley:analytics:rate:{visitor_hash(request)}:{minute}"
    pipe = redis_client().pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count, _ = pipe.execute()
    if count <= settings.PARLEY_ANALYTICS_RATE_PER_MINUTE:
        return 0
    return max(1, 60 * (minute + 1) - int(now))
