"""Product analytics: the consent gate and the one writer of `AnalyticsEvent`.

Every event, from the browser (`POST /api/analytics/events`) or from a server action (through
`event_record`, which every app already calls), passes `analytics_allowed` first:
- `DNT: 1` or `Sec-GPC: 1` on the request means no event, whatever was chosen;
- a signed-in user needs their stored choice to be "analytics" under the current policy version;
- an anonymous visitor needs the consent cookie to say so;
- no choice yet means no event (opt-in).

Nothing identifying is stored: no IP address, no cookie id. `visitor` is a hash of IP + user agent
under a salt that lives one day in Redis and is never written next to the events.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from common.redis_connection import redis_client
from onboarding.models import AnalyticsEvent, Consent, ConsentChoice

logger = logging.getLogger(__name__)

# The consent cookie: "<choice>.<policy version>.<subject id>" (first-party, no tracking value: the
# subject id only ties the visitor's ConsentRecord rows together).
CONSENT_COOKIE = "parley_consent"
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_BOT = re.compile(r"bot|crawl|spider|slurp|headlesschrome|curl|wget|python-requests|httpx", re.I)
_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|(android(?!.*mobile))", re.I)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|blackberry|opera mini|windows phone", re.I)


def privacy_signal(request: HttpRequest | None) -> str:
    """'gpc' or 'dnt' when the browser asks not to be tracked, else ''."""
    if request is None:
        return ""
    if request.headers.get("Sec-GPC", "").strip() == "1":
        return "gpc"
    if request.headers.get("DNT", "").strip() == "1":
        return "dnt"
    return ""


@dataclass(frozen=True)
class CookieConsent:
    choice: str
    policy_version: str
    subject: str


def consent_from_cookie(request: HttpRequest | None) -> CookieConsent | None:
    """The anonymous visitor's choice from the consent cookie, or None when absent or malformed."""
    raw = request.COOKIES.get(CONSENT_COOKIE, "") if request is not None else ""
    parts = raw.split(".")
    if len(parts) != 3 or parts[0] not in ConsentChoice.values or not re.fullmatch(r"[A-Za-z0-9_-]{8,40}", parts[2]):
        return None
    return CookieConsent(choice=parts[0], policy_version=parts[1], subject=parts[2])


def consent_cookie_value(*, choice: str, subject: str | None = None) -> str:
    return f"{choice}.{settings.PARLEY_ANALYTICS_POLICY_VERSION}.{subject or secrets.token_urlsafe(12)}"


def consent_choice(*, request: HttpRequest | None = None, user_id: int | None = None) -> str | None:
    """The current choice under the current policy version (None: not asked, or asked under an older one)."""
    version = settings.PARLEY_ANALYTICS_POLICY_VERSION
    if user_id:
        row = Consent.objects.filter(user_id=user_id).values_list("choice", "policy_version").first()
        return row[0] if row and row[1] == version else None
    cookie = consent_from_cookie(request)
    return cookie.choice if cookie and cookie.policy_version == version else None


def analytics_allowed(*, request: HttpRequest | None = None, user_id: int | None = None) -> bool:
    if privacy_signal(request):
        return False
    if user_id is None and request is not None and getattr(request, "user", None) is not None \
            and request.user.is_authenticated:
        user_id = request.user.pk
    if user_id is None and request is None:
        return False
    return consent_choice(request=request, user_id=user_id) == ConsentChoice.ANALYTICS


_salt_memo: dict[str, str] = {}


def _daily_salt(day: str) -> str:
    """Today's salt: one random value per UTC day, shared by every process through Redis (SET NX),
    expiring after two days. It is never stored anywhere else."""
    salt = _salt_memo.get(day)
    if salt is None:
        key = f"parley:analytics:salt:{day}"
        client = redis_client()
        client.set(key, secrets.token_hex(16), nx=True, ex=2 * 86400)
        salt = client.get(key)
        _salt_memo.clear()
        _salt_memo[day] = salt
    return salt


def visitor_hash(request: HttpRequest, *, now: datetime | None = None) -> str:
    day = (now or timezone.now()).strftime("%Y-%m-%d")
    ip = request.META.get("REMOTE_ADDR", "")
    agent = request.headers.get("User-Agent", "")
    material = f"{_daily_salt(day)}|{ip}|{agent}".encode()
    return hashlib.blake2b(material, digest_size=8).hexdigest()


def device_class(user_agent: str) -> str:
    if not user_agent:
        return ""
    if _BOT.search(user_agent):
        return AnalyticsEvent.Device.BOT
    if _TABLET.search(user_agent):
        return AnalyticsEvent.Device.TABLET
    if _MOBILE.search(user_agent):
        return AnalyticsEvent.Device.MOBILE
    return AnalyticsEvent.Device.DESKTOP


def referrer_host(referrer: str, *, own_host: str = "") -> str:
    """The referring site's host, '' for none or for this site itself (an internal click is no referral)."""
    try:
        host = (urlsplit(referrer).hostname or "")[:255]
    except ValueError:
        return ""
    return "" if host and own_host and host == own_host.split(":")[0] else host


def utm_from_url(url: str) -> dict[str, str]:
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return {}
    return {name: query[name][0][:100] for name in UTM_FIELDS if query.get(name)}


def _plan_of(user_id: int | None) -> str:
    if not user_id:
        return ""
    from accounts.selectors import user_get
    from billing.selectors import entitlements_for_user

    user = user_get(user_id=user_id)
    return entitlements_for_user(user=user).plan if user is not None else ""


def analytics_event_build(*, name: str, source: str, at: datetime | None = None, request: HttpRequest | None = None,
                          user_id: int | None = None, team_id: int | None = None, path: str = "",
                          referrer: str = "", url: str = "", plan: str | None = None,
                          props: dict | None = None) -> AnalyticsEvent:
    """An unsaved event row (no consent check: callers check once per request or action)."""
    now = at or timezone.now()
    event = AnalyticsEvent(name=name[:64], source=source, at=now, path=path[:300], user_id=user_id,
                           team_id=team_id, props=props or {},
                           plan=_plan_of(user_id) if plan is None else plan)
    if request is not None:
        agent = request.headers.get("User-Agent", "")
        event.device = device_class(agent)
        event.visitor = visitor_hash(request, now=now)
        event.country = country_of(request.META.get("REMOTE_ADDR", ""))
        event.referrer_host = referrer_host(referrer, own_host=request.get_host())
        if not event.path:
            event.path = request.path[:300]
    for field, value in utm_from_url(url).items():
        setattr(event, field, value)
    return event


def country_of(ip: str) -> str:
    """ISO country code from the operator's GeoIP file (PARLEY_ANALYTICS_GEOIP_PATH), else ''."""
    path = settings.PARLEY_ANALYTICS_GEOIP_PATH
    if not path or not ip:
        return ""
    reader = _geoip_reader(path)
    if reader is None:
        return ""
    try:
        record = reader.get(ip) or {}
    except (ValueError, RuntimeError):  # not an address, IPv6 on an IPv4 file, or a corrupt record
        return ""
    code = (record.get("country") or record.get("registered_country") or {}).get("iso_code", "")
    return code[:2] if isinstance(code, str) else ""


_readers: dict[str, object] = {}


def _geoip_reader(path: str):
    if path not in _readers:
        try:
            import maxminddb

            _readers[path] = maxminddb.open_database(path)
        except (ImportError, OSError, ValueError, RuntimeError):  # InvalidDatabaseError is a RuntimeError
            logger.warning("analytics: cannot open the GeoIP file %s; no country is recorded", path)
            _readers[path] = None
    return _readers[path]


def analytics_event_record(*, name: str, user_id: int | None = None, team_id: int | None = None,
                           request: HttpRequest | None = None, props: dict | None = None,
                           path: str = "") -> AnalyticsEvent | None:
    """A server-side domain event, stored only when the user (or the request's visitor) consented."""
    if not analytics_allowed(request=request, user_id=user_id):
        return None
    event = analytics_event_build(name=name, source=AnalyticsEvent.Source.SERVER, request=request,
                                  user_id=user_id, team_id=team_id, props=props, path=path)
    with transaction.atomic():
        event.save()
    from onboarding.services.umami import umami_forward_enqueue  # umami imports this module

    umami_forward_enqueue(event_ids=[event.pk])
    return event
