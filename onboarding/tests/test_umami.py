"""Forwarding stored events to Umami's `POST /api/send`.

Umami is an external service, so a loopback HTTP server in a thread stands in for it here: it records
each request's path, headers and JSON body and answers with the statuses a test queues. Everything on
Parley's side is real: the consent gate, the stored rows, the commit hook, the Celery task (run in this
process in Celery's eager mode, retries included) and the HTTP call.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.utils import timezone

from accounts.tests.factories import user_make
from onboarding.models import AnalyticsEvent, Consent, ConsentChoice, Event
from onboarding.services import analytics_event_build, event_record
from onboarding.services.umami import USER_AGENT, umami_forward_enqueue

pytestmark = pytest.mark.django_db

WEBSITE = "4f3c2a1e-0000-4000-8000-0123456789ab"
PAYLOAD_KEYS = {"hostname", "language", "referrer", "screen", "title", "url", "website"}
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


class UmamiStandIn:
    """Records what Umami would receive; answers 200 unless a test queued other statuses first."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.statuses: list[int] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = stand_in.statuses.pop(0) if stand_in.statuses else 200
                stand_in.received.append({"path": self.path, "headers": dict(self.headers),
                                          "body": json.loads(body), "status": status})
                answer = b'{"cache":"x","sessionId":"s","visitId":"v"}' if status == 200 else b"oops"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def umami(settings):
    stand_in = UmamiStandIn()
    settings.UMAMI_URL, settings.UMAMI_WEBSITE_ID = stand_in.url + "/", WEBSITE
    settings.PARLEY_BASE_URL = "https://parley.example.com"
    yield stand_in
    stand_in.close()


@pytest.fixture
def eager():
    """Tasks run in this process; a task's failure is its state, as in a worker (not raised at the caller)."""
    from config.celery import app

    before = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = before


def consented_user():
    user = user_make()
    Consent.objects.create(user=user, choice=ConsentChoice.ANALYTICS, decided_at=timezone.now(),
                           policy_version=settings.PARLEY_ANALYTICS_POLICY_VERSION)
    return user


def phone_request(path: str = "/billing/checkout/", **headers):
    return RequestFactory().get(path, HTTP_USER_AGENT=PHONE, REMOTE_ADDR="203.0.113.9", **headers)


def test_a_server_event_reaches_umami_in_its_documented_shape(umami, eager, django_capture_on_commit_callbacks):
    user = consented_user()

    with django_capture_on_commit_callbacks(execute=True):
        event_record(user_id=user.pk, name=Event.PURCHASE_STARTED, request=phone_request(),
                     data={"offer": "pro", "amount_cents": 199900})

    [sent] = umami.received
    assert sent["path"] == "/api/send" and sent["status"] == 200
    assert sent["headers"]["Content-Type"] == "application/json"
    # A browser-like agent Umami's bot filter lets through, not urllib's default "Python-urllib/3.11".
    assert sent["headers"]["User-Agent"] == USER_AGENT and USER_AGENT.startswith("Mozilla/5.0 (")
    body = sent["body"]
    assert body["type"] == "event" and set(body) == {"type", "payload"}
    payload = body["payload"]
    assert set(payload) == PAYLOAD_KEYS | {"name", "data", "id"}
    stored = AnalyticsEvent.objects.get(user=user)
    assert payload == {
        "hostname": "parley.example.com", "language": "", "referrer": "", "screen": "390x844", "title": "",
        "url": "/billing/checkout/", "website": WEBSITE, "name": "purchase_started",
        "data": {"source": "server", "plan": "free", "offer": "pro", "amount_cents": 199900},
        "id": stored.visitor,
    }
    # Nothing Parley does not store itself: no address, no user.
    assert "203.0.113.9" not in json.dumps(body) and "user" not in payload["data"]


def test_a_page_view_has_no_name_and_keeps_its_referrer_host_and_utm(umami, eager,
                                                                    django_capture_on_commit_callbacks):
    request = phone_request("/pricing/")
    event = analytics_event_build(name="pageview", source=AnalyticsEvent.Source.BROWSER, request=request,
                                  referrer="https://news.example.org/story?id=5",
                                  url="https://parley.example.com/pricing/?utm_source=news&utm_campaign=launch")
    event.save()

    with django_capture_on_commit_callbacks(execute=True):
        umami_forward_enqueue(event_ids=[event.pk])

    [sent] = umami.received
    payload = sent["body"]["payload"]
    assert set(payload) == PAYLOAD_KEYS | {"id"}  # a page view: no name, no data
    assert payload["url"] == "/pricing/?utm_source=news&utm_campaign=launch"
    assert payload["referrer"] == "https://news.example.org/"


def test_a_failed_send_is_retried_and_then_succeeds_without_resending_what_went(umami, eager,
                                                                             django_capture_on_commit_callbacks):
    events = [analytics_event_build(name=name, source=AnalyticsEvent.Source.BROWSER, path="/chat/", plan="")
              for name in ("chat_opened", "model_picked")]
    AnalyticsEvent.objects.bulk_create(events)
    umami.statuses = [200, 500]  # the first goes; Umami fails on the second once

    with django_capture_on_commit_callbacks(execute=True):
        umami_forward_enqueue(event_ids=[event.pk for event in events])

    assert [(r["body"]["payload"]["name"], r["status"]) for r in umami.received] == [
        ("chat_opened", 200), ("model_picked", 500), ("model_picked", 200)]


def test_umami_down_never_reaches_the_user(settings, eager, django_capture_on_commit_callbacks):
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        settings.UMAMI_URL = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings.UMAMI_WEBSITE_ID = WEBSITE
    user = consented_user()

    with django_capture_on_commit_callbacks(execute=True):
        event_record(user_id=user.pk, name=Event.CANCELED, request=phone_request(), data={"by": "customer"})

    assert AnalyticsEvent.objects.filter(user=user, name="canceled").count() == 1


def test_nothing_is_forwarded_without_consent_or_without_umami(umami, eager, settings,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        event_record(user_id=user_make().pk, name=Event.PAID, data={"amount_cents": 100})  # no consent
        event_record(user_id=consented_user().pk, name=Event.PAID, request=phone_request(HTTP_SEC_GPC="1"))
    settings.UMAMI_URL = ""
    with django_capture_on_commit_callbacks(execute=True):
        event_record(user_id=consented_user().pk, name=Event.PAID, data={"amount_cents": 100})

    assert AnalyticsEvent.objects.count() == 1  # the last one is stored, but Umami is off
    assert umami.received == []


def test_a_consented_browser_batch_is_forwarded_too(umami, eager, client, django_capture_on_commit_callbacks):
    from onboarding.services import CONSENT_COOKIE, consent_cookie_value

    client.cookies[CONSENT_COOKIE] = consent_cookie_value(choice=ConsentChoice.ANALYTICS)
    body = {"events": [{"name": "pageview", "path": "/pricing/", "url": "https://parley.example.com/pricing/",
                        "referrer": "", "props": {}},
                       {"name": "composer_send", "path": "/app/chats/", "url": "", "referrer": "", "props": {}}]}

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/analytics/events", json.dumps(body), content_type="text/plain",
                               HTTP_USER_AGENT=PHONE)

    assert response.status_code == 202, response.content
    names = sorted(r["body"]["payload"].get("name", "(page view)") for r in umami.received)
    assert names == ["(page view)", "composer_send"]
