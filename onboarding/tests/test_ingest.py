"""POST /api/analytics/events: the rows a consented batch stores (no IP, a visitor hash under the day's
salt), each bad input, the consent / DNT / GPC refusals, the rate limit, and one INSERT per batch."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.factories import user_make
from common.redis_connection import redis_client
from onboarding.models import AnalyticsEvent
from onboarding.services import consent_set
from onboarding.services.analytics import visitor_hash

pytestmark = pytest.mark.django_db
URL = "/api/analytics/events"
IP = "203.0.113.9"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Rate counters live a minute in the suite's Redis db: each test starts with none."""
    client = redis_client()
    for key in client.scan_iter("parley:analytics:rate:*"):
        client.delete(key)


@pytest.fixture
def consented(client):
    client.post("/privacy/consent/", {"choice": "analytics", "source": "banner"})
    return client


def event(**fields) -> dict:
    return {"name": "pageview", "path": "/app/", **fields}


def send(client, payload, *, content_type="text/plain;charset=UTF-8", agent=AGENT, **extra):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    headers = {"REMOTE_ADDR": IP, **extra}
    if agent:
        headers["HTTP_USER_AGENT"] = agent
    return client.post(URL, body, content_type=content_type, **headers)


# ----------------------------------------------------------------------------- stored rows


def test_a_consented_batch_is_stored_with_its_fields_and_no_ip(consented):
    response = send(consented, {"events": [
        event(url="https://parley.example/app/?utm_source=newsletter&utm_campaign=winter&q=secret",
              referrer="https://news.example.org/item?id=7"),
        event(name="cta.start_tour", path="/app/badges/?token=abc#top", props={"place": "header", "n": 2,
                                                                                "ok": True, "none": None}),
    ]})

    assert response.status_code == 202 and response.json() == {"stored": 2}
    view, click = AnalyticsEvent.objects.order_by("id")
    assert (view.name, view.source, view.path) == ("pageview", "browser", "/app/")
    assert view.referrer_host == "news.example.org"
    assert (view.utm_source, view.utm_campaign, view.utm_medium) == ("newsletter", "winter", "")
    assert (view.device, view.user_id, view.team_id, view.plan, view.country) == ("desktop", None, None, "", "")
    assert (click.name, click.path, click.props) == ("cta.start_tour", "/app/badges/",
                                                     {"place": "header", "n": 2, "ok": True, "none": None})
    assert len(view.visitor) == 16 and view.visitor == click.visitor
    for row in AnalyticsEvent.objects.values():
        assert IP not in json.dumps(row, default=str) and "secret" not in json.dumps(row, default=str)


def test_json_content_type_is_accepted_too_and_a_phone_is_a_phone(consented):
    response = send(consented, {"events": [event()]}, content_type="application/json", agent=PHONE)

    assert response.status_code == 202
    assert AnalyticsEvent.objects.get().device == "mobile"


def test_the_visitor_is_a_hash_under_the_days_salt_which_tomorrow_is_another(consented, rf):
    send(consented, {"events": [event()]})

    today = timezone.now()
    salt = redis_client().get(f"parley:analytics:salt:{today:%Y-%m-%d}")
    expected = hashlib.blake2b(f"{salt}|{IP}|{AGENT}".encode(), digest_size=8).hexdigest()
    assert AnalyticsEvent.objects.get().visitor == expected
    unsalted = hashlib.blake2b(f"|{IP}|{AGENT}".encode(), digest_size=8).hexdigest()
    assert expected != unsalted
    request = rf.get("/", REMOTE_ADDR=IP, HTTP_USER_AGENT=AGENT)
    tomorrow = visitor_hash(request, now=today + timedelta(days=1))
    assert tomorrow != expected and len(tomorrow) == 16
    assert 0 < redis_client().ttl(f"parley:analytics:salt:{today:%Y-%m-%d}") <= 2 * 86400


def test_a_signed_in_users_events_carry_the_user_and_their_plan(client):
    user = user_make()
    consent_set(choice="analytics", source="settings", user=user)
    client.force_login(user)

    assert send(client, {"events": [event(), event(name="ui_click")]}).status_code == 202

    rows = AnalyticsEvent.objects.all()
    assert {row.user_id for row in rows} == {user.pk} and all(row.plan for row in rows)


def test_one_insert_per_batch_whatever_its_size(consented):
    counts = {}
    for size in (1, 50):
        with CaptureQueriesContext(connection) as queries:
            assert send(consented, {"events": [event() for _ in range(size)]}).status_code == 202
        counts[size] = [q["sql"].split()[0] for q in queries.captured_queries]

    assert counts[1] == counts[50]
    assert counts[50].count("INSERT") == 1
    assert AnalyticsEvent.objects.count() == 51


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("header", "name"), [({"HTTP_DNT": "1"}, "Do Not Track"),
                                               ({"HTTP_SEC_GPC": "1"}, "Global Privacy Control")])
def test_dnt_or_gpc_refuses_even_with_consent(consented, header, name):
    response = send(consented, {"events": [event()]}, **header)

    assert response.status_code == 403
    assert response.json()["error"] == "do_not_track" and name in response.json()["message"]
    assert not AnalyticsEvent.objects.exists()


def test_no_choice_or_necessary_only_is_refused(client):
    first = send(client, {"events": [event()]})
    client.post("/privacy/consent/", {"choice": "necessary", "source": "banner"})
    necessary = send(client, {"events": [event()]})

    for response in (first, necessary):
        assert response.status_code == 403 and response.json()["error"] == "consent_required"
        assert "Allow analytics" in response.json()["message"]
    assert not AnalyticsEvent.objects.exists()


def test_a_signed_in_users_profile_choice_wins_over_a_cookie(consented):
    user = user_make()
    consent_set(choice="necessary", source="settings", user=user)
    consented.force_login(user)

    assert send(consented, {"events": [event()]}).status_code == 403
    assert not AnalyticsEvent.objects.exists()


def test_a_request_without_a_user_agent_is_refused(consented):
    response = send(consented, {"events": [event()]}, agent="")

    assert response.status_code == 400
    assert response.json() == {"error": "user_agent_required", "message": "A User-Agent header is required."}
    assert not AnalyticsEvent.objects.exists()


def test_a_get_is_the_staff_api_and_stores_nothing(consented):
    """GET on the same path is staff's events-by-name API: a visitor gets 401 and nothing is stored."""
    response = consented.get(URL, HTTP_USER_AGENT=AGENT)

    assert response.status_code == 401
    assert not AnalyticsEvent.objects.exists()


def test_the_rate_limit_is_per_visitor_and_says_when_to_retry(consented, settings):
    settings.PARLEY_ANALYTICS_RATE_PER_MINUTE = 3
    statuses = [send(consented, {"events": [event()]}).status_code for _ in range(3)]
    refused = send(consented, {"events": [event()]})
    other_visitor = send(consented, {"events": [event()]}, agent=PHONE)

    assert statuses == [202, 202, 202]
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60 and "At most 3 requests a minute" in refused.json()["message"]
    assert other_visitor.status_code == 202
    assert AnalyticsEvent.objects.count() == 4
    assert not any(IP in key for key in redis_client().scan_iter("parley:analytics:rate:*"))


# ----------------------------------------------------------------------------- bad input


def test_a_batch_over_the_limit_is_a_413_that_says_the_limit(consented, settings):
    settings.PARLEY_ANALYTICS_MAX_BATCH = 3

    response = send(consented, {"events": [event() for _ in range(4)]})

    assert response.status_code == 413 and response.json()["limit"] == 3
    assert response.json()["message"] == "events may hold at most 3 events per request; this had 4."
    assert not AnalyticsEvent.objects.exists()


def test_a_body_over_the_limit_is_a_413_that_says_the_limit(consented, settings):
    settings.PARLEY_ANALYTICS_MAX_BODY_BYTES = 200

    response = send(consented, {"events": [event(props={"text": "x" * 190})]})

    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    assert "at most 200 bytes" in response.json()["message"]
    assert not AnalyticsEvent.objects.exists()


@pytest.mark.parametrize(("body", "code", "says"), [
    ("{not json", "invalid_json", "The body is not valid JSON"),
    ('{"events": [{"name": "pageview", "path": "/", "props": {"x": NaN}}]}', "invalid_json", "NaN is not allowed"),
    ("[]", "invalid_body", 'a JSON object with an "events" list'),
    ({"event": []}, "invalid_body", 'a JSON object with an "events" list'),
    ({"events": {"name": "pageview"}}, "invalid_body", "events must be a list."),
    ({"events": []}, "invalid_body", "events must hold at least one event."),
    ({"events": ["pageview"]}, "invalid_event", "events[0] must be an object."),
    ({"events": [event(), event(ip="1.2.3.4")]}, "invalid_event", "events[1].ip is not a known field"),
    ({"events": [{"path": "/"}]}, "invalid_event", "events[0].name is required."),
    ({"events": [event(name=7)]}, "invalid_event", "events[0].name must be a string."),
    ({"events": [event(name="Page View")]}, "invalid_event", "events[0].name must be 1-64 characters of a-z"),
    ({"events": [event(name="a" * 65)]}, "invalid_event", "events[0].name must be at most 64 characters."),
    ({"events": [{"name": "pageview"}]}, "invalid_event", "events[0].path is required."),
    ({"events": [event(path="app")]}, "invalid_event", "events[0].path must be the page's path"),
    ({"events": [event(path="/" + "a" * 300)]}, "invalid_event", "events[0].path must be at most 300 characters."),
    ({"events": [event(url=["x"])]}, "invalid_event", "events[0].url must be a string."),
    ({"events": [event(referrer="h" * 2001)]}, "invalid_event", "events[0].referrer must be at most 2000"),
    ({"events": [event(props=["a"])]}, "invalid_event", "events[0].props must be an object."),
    ({"events": [event(props={f"k{i}": i for i in range(21)})]}, "invalid_event",
     "events[0].props may hold at most 20 values."),
    ({"events": [event(props={"nested": {"a": 1}})]}, "invalid_event",
     "events[0].props.nested must be a string, number, true, false or null."),
    ({"events": [event(props={"long": "x" * 201})]}, "invalid_event",
     "events[0].props.long must be at most 200 characters."),
    ({"events": [event(props={"k" * 65: 1})]}, "invalid_event", "events[0].props keys must be at most 64"),
])
def test_each_bad_body_is_a_400_that_names_the_field(consented, body, code, says):
    response = send(consented, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"] == code and says in response.json()["message"]
    assert not AnalyticsEvent.objects.exists()


def test_a_form_encoded_body_is_a_415(consented):
    response = send(consented, "events=1", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert "Send the body as application/json or text/plain" in response.json()["message"]
    assert not AnalyticsEvent.objects.exists()
