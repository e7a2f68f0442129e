"""Optional forwarding of stored analytics events to a self-hosted Umami (its `POST /api/send`).

With UMAMI_URL and UMAMI_WEBSITE_ID set, every event Parley stores (so only consented ones, and
never one from a browser sending DNT or GPC) is also sent, server-side, by a Celery task:
- `umami_forward_enqueue(event_ids=...)` queues the send once the events' transaction commits;
  `analytics_event_record` calls it for server events and the browser ingest for its batches;
- the task re-reads the rows and posts them one by one in Umami's documented payload, retrying
  from the first one that failed (up to 5 times, with backoff). An event whose send timed out may
  reach Umami twice; none is sent twice on purpose.
Nothing here can fail or slow the user's request: enqueueing happens after the commit, swallows
broker errors, and the HTTP call runs in the worker with a timeout.

What Umami receives is what Parley stores, never more: no IP address and no real user agent (Umami
sees the worker's address and a fixed Parley agent), the referrer's host only, a representative
screen size for the device class, and the daily visitor hash as Umami's session id, so Umami counts
visitors the way Parley does (per day) rather than as one visitor, the server.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import transaction

from onboarding.models import AnalyticsEvent
from onboarding.services.analytics import UTM_FIELDS

logger = logging.getLogger(__name__)

# Umami ignores requests whose User-Agent looks like a bot (it runs the `isbot` patterns, which match
# empty agents, "python-urllib", a bare "(compatible; X/1.0)" and words such as "server"), so the
# default urllib agent would be dropped silently. This agent passes those patterns and says what it is.
USER_AGENT = "Mozilla/5.0 (compatible; Parley/1.0; +first-party analytics relay)"
TIMEOUT_SECONDS = 10
PAGEVIEW = "pageview"
# Umami derives its device type from the screen width when the agent names no OS (ours doesn't):
# these widths land in the same class Parley recorded.
SCREENS = {
    AnalyticsEvent.Device.DESKTOP: "1920x1080",
    AnalyticsEvent.Device.TABLET: "768x1024",
    AnalyticsEvent.Device.MOBILE: "390x844",
}


class UmamiSendError(Exception):
    """Umami did not take the event (a network error or a non-2xx answer); the task retries."""


def umami_enabled() -> bool:
    return bool(settings.UMAMI_URL and settings.UMAMI_WEBSITE_ID)


def umami_forward_enqueue(*, event_ids: list[int]) -> None:
    """Queue the events for Umami once the current transaction commits (nothing when Umami is off)."""
    ids = [int(pk) for pk in event_ids if pk]
    if not ids or not umami_enabled():
        return
    transaction.on_commit(lambda: _enqueue(ids))


def _enqueue(ids: list[int]) -> None:
    from onboarding.tasks import umami_forward

    try:
        umami_forward.delay(event_ids=ids)
    except Exception:  # a broker outage loses the copy for Umami, never the user's request
        logger.warning("umami: could not queue %d event(s) for forwarding", len(ids), exc_info=True)


def umami_payload(event: AnalyticsEvent) -> dict:
    """Umami's documented /api/send body for one stored event (a page view carries no `name`)."""
    base = urlsplit(settings.PARLEY_BASE_URL)
    utm = {field: getattr(event, field) for field in UTM_FIELDS if getattr(event, field)}
    url = (event.path or "/") + (f"?{urlencode(utm)}" if utm else "")
    payload: dict[str, object] = {
        "hostname": base.hostname or "",
        "language": "",
        "referrer": f"https://{event.referrer_host}/" if event.referrer_host else "",
        "screen": SCREENS.get(event.device, ""),
        "title": "",
        "url": url,
        "website": settings.UMAMI_WEBSITE_ID,
    }
    if event.name != PAGEVIEW:
        payload["name"] = event.name
        payload["data"] = {"source": event.source, **({"plan": event.plan} if event.plan else {}), **event.props}
    if event.visitor:
        payload["id"] = event.visitor
    return {"type": "event", "payload": payload}


def umami_send(*, event: AnalyticsEvent) -> None:
    """POST one event to Umami; raises UmamiSendError when it was not accepted."""
    body = json.dumps(umami_payload(event)).encode()
    request = urllib.request.Request(
        settings.UMAMI_URL.rstrip("/") + "/api/send", data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise UmamiSendError(f"Umami answered {exc.code} for event {event.pk}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UmamiSendError(f"Umami unreachable for event {event.pk}: {exc}") from None


def umami_forward(*, event_ids: list[int]) -> list[int]:
    """Send the events still stored, in order; returns the ids not sent yet when one fails (the task
    retries with those), [] when all went."""
    if not umami_enabled():
        return []
    events = {event.pk: event for event in AnalyticsEvent.objects.filter(pk__in=event_ids).order_by("id")}
    ordered = [pk for pk in event_ids if pk in events]  # a row deleted meanwhile (retention) is skipped
    for index, pk in enumerate(ordered):
        try:
            umami_send(event=events[pk])
        except UmamiSendError:
            logger.warning("umami: event %s not accepted; %d left to send", pk, len(ordered) - index, exc_info=True)
            return ordered[index:]
    return []
