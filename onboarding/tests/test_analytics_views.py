"""The staff analytics dashboard, its CSV downloads and the analytics API: who may see them, that the CSV is
the table, and that each kind of bad parameter is a 400 that says what to fix."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import apikey_create
from accounts.tests.factories import staff_login, user_make
from onboarding.analytics_views import TABLES, Params, funnel_rows, table_rows
from onboarding.models import AnalyticsAlert, AnalyticsEvent
from onboarding.selectors import (
    PAGEVIEW,
    analytics_events_by_name,
    analytics_funnel,
    analytics_timeseries,
    analytics_top,
)

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(UTC).date()
DAY0 = datetime.combine(TODAY - timedelta(days=3), datetime.min.time(), tzinfo=UTC)
HOUR = timedelta(hours=1)
URL = "/staff/analytics/"
FUNNEL = {"step": ["signed_up", "email_verified", "paid"], "window": "1", "window_unit": "days",
          "breakdown": "plan"}


@pytest.fixture
def recorded():
    """Three days ago: page views from three visitors, and three users part-way through a funnel."""
    users = [user_make() for _ in range(3)]
    AnalyticsEvent.objects.all().delete()
    rows = [
        AnalyticsEvent(name=PAGEVIEW, at=DAY0 + HOUR, source="browser", visitor="v1", path="/",
                       referrer_host="news.example", device="desktop", utm_source="news", utm_campaign="launch"),
        AnalyticsEvent(name=PAGEVIEW, at=DAY0 + 2 * HOUR, source="browser", visitor="v1", path="/pricing",
                       device="desktop"),
        AnalyticsEvent(name=PAGEVIEW, at=DAY0 + 3 * HOUR, source="browser", visitor="v2", path="/", device="mobile",
                       country="NL"),
        AnalyticsEvent(name=PAGEVIEW, at=DAY0 - timedelta(days=40), source="browser", visitor="old", path="/"),
    ]
    for n, user in enumerate(users):
        start = DAY0 + (n + 1) * HOUR
        rows.append(AnalyticsEvent(name="signed_up", at=start, source="server", user=user,
                                   plan="pro" if n == 0 else "free"))
        if n < 2:
            rows.append(AnalyticsEvent(name="email_verified", at=start + HOUR, source="server", user=user))
        if n < 1:
            rows.append(AnalyticsEvent(name="paid", at=start + 3 * HOUR, source="server", user=user))
    AnalyticsEvent.objects.bulk_create(rows)
    return users


@pytest.fixture
def staff(client):
    user = user_make(is_staff=True)
    staff_login(client, user)
    return user


def _params(**extra) -> Params:
    until = TODAY
    return Params(since_day=until - timedelta(days=29), until_day=until, interval="day", **extra)


def _csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="analytics-')
    return list(csv.reader(io.StringIO(response.content.decode())))


def _cells(body: str, table_id: str) -> list[list[str]]:
    """The text of each body row of one table on the page."""
    table = body.split(f'id="{table_id}"')[1].split("</table>")[0]
    tbody = table.split("<tbody>")[1]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", tbody, re.S)]


# ----------------------------------------------------------------------------- who may see it


def test_anonymous_people_are_sent_to_log_in(client):
    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/staff/analytics/")


def test_a_signed_in_non_staff_user_gets_403(client):
    client.force_login(user_make())

    response = client.get(URL)

    assert response.status_code == 403
    assert "Product analytics are for staff" in response.content.decode()
    assert client.get(URL, {"format": "csv", "table": "pages"}).status_code == 403


def test_staff_without_a_second_factor_are_sent_to_admins_log_in_as_for_admin(client):
    client.force_login(user_make(is_staff=True))

    response = client.get(URL)

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/?next=")


def test_the_admin_index_links_the_dashboard(client, staff):
    assert 'href="/staff/analytics/"' in client.get("/admin/").content.decode()


# ----------------------------------------------------------------------------- the page


def test_the_page_shows_every_section_with_the_recorded_data(client, staff, recorded):
    AnalyticsAlert.objects.create(kind="traffic_spike", hour=timezone.now() - timedelta(hours=2), observed=90,
                                  baseline=10, threshold=30, detail="90 events against 10 usually")
    AnalyticsAlert.objects.create(kind="error_rate", hour=timezone.now() - timedelta(days=8), observed=0.5,
                                  baseline=0.01, threshold=0.05, detail="an old one")

    response = client.get(URL)
    body = response.content.decode()

    assert response.status_code == 200
    assert "90 events against 10 usually" in body and "an old one" not in body
    assert 'id="total-visitors">2<' in body and 'id="total-pageviews">3<' in body
    assert 'id="active-users">0 / 3 / 3<' in body
    assert '<canvas id="analytics-timeseries"' in body and 'id="analytics-data"' in body
    assert "vendor/chart.js/chart.umd.js" in body and "onboarding/analytics.js" in body
    assert _cells(body, "table-pages") == [["/", "2", "2"], ["/pricing", "1", "1"]]
    assert _cells(body, "table-referrers") == [["news.example", "1", "1"]]
    assert _cells(body, "table-utm") == [["news / launch", "1", "1"]]
    assert _cells(body, "table-devices") == [["desktop", "2", "1"], ["mobile", "1", "1"]]
    assert ["pageview", "3", "0", "2"] in _cells(body, "table-events")
    retention = _cells(body, "table-retention")
    assert retention[0][:3] == [f"{DAY0 - timedelta(days=DAY0.weekday()):%Y-%m-%d}", "3", "100.0%"]
    # The builder offers the recorded names; no funnel until steps are chosen.
    assert '<option value="email_verified">email_verified</option>' in body and 'id="funnel-hint"' in body


def test_a_funnel_built_on_the_page(client, staff, recorded):
    body = client.get(URL, {**FUNNEL, "order": "ordered"}).content.decode()

    assert '<canvas id="analytics-funnel"' in body
    assert _cells(body, "table-funnel") == [
        ["1. signed_up", "3", "–", "100.0%", "–", "–", "–", "–", "–"],
        ["2. email_verified", "2", "66.7%", "66.7%", "1", "1 h", "1 h", "1 h", "1 h"],
        ["3. paid", "1", "50.0%", "33.3%", "1", "3 h", "3 h", "2 h", "2 h"],
    ]
    assert 'data-group="free"' in body and 'data-group="pro"' in body
    assert '<option value="paid" selected>paid</option>' in body


# ----------------------------------------------------------------------------- CSV


def test_each_csv_is_its_table(client, staff, recorded):
    params = _params(steps=FUNNEL["step"], breakdown="plan")
    for name in TABLES:
        response = client.get(URL, {**FUNNEL, "format": "csv", "table": name})
        assert response.status_code == 200, name
        header, rows = table_rows(name, params)
        assert _csv(response) == [header, *[[str(cell) for cell in row] for row in rows]], name


def test_the_csv_rows_are_the_selectors_figures(client, staff, recorded):
    since, until = _params().since, _params().until

    pages = _csv(client.get(URL, {"format": "csv", "table": "pages"}))
    top = analytics_top(since=since, until=until, dimension="pages")
    assert pages[1:] == [[r.label, str(r.count), str(r.visitors)] for r in top] == [["/", "2", "2"],
                                                                                     ["/pricing", "1", "1"]]

    events = _csv(client.get(URL, {"format": "csv", "table": "events"}))
    assert events[1:] == [[e.name, str(e.count), str(e.users), str(e.visitors)]
                          for e in analytics_events_by_name(since=since, until=until)]

    series = _csv(client.get(URL, {"format": "csv", "table": "timeseries"}))
    buckets = analytics_timeseries(since=since, until=until).buckets
    assert [(row[0], int(row[1]), int(row[2])) for row in series[1:]] == [
        (f"{b.start:%Y-%m-%d %H:%M}", b.visitors, b.pageviews) for b in buckets]
    assert sum(int(row[2]) for row in series[1:]) == 3

    funnel_csv = _csv(client.get(URL, {**FUNNEL, "format": "csv", "table": "funnel"}))
    funnel = analytics_funnel(steps=FUNNEL["step"], since=since, until=until, window=timedelta(days=1),
                              breakdown="plan")
    assert funnel_csv[1:] == [[str(c) for c in row] for row in funnel_rows(funnel)[1]]
    assert [row[:4] for row in funnel_csv[1:]] == [
        ["all", "1", "signed_up", "3"], ["all", "2", "email_verified", "2"], ["all", "3", "paid", "1"],
        ["free", "1", "signed_up", "2"], ["free", "2", "email_verified", "1"], ["free", "3", "paid", "0"],
        ["pro", "1", "signed_up", "1"], ["pro", "2", "email_verified", "1"], ["pro", "3", "paid", "1"]]
    assert funnel_csv[2][7] == "3600"  # median seconds from step 1 to verifying


# ----------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(("query", "message"), [
    ({"since": "2026-02-30"}, "since: '2026-02-30' is not a date; write it as YYYY-MM-DD"),
    ({"until": "yesterday"}, "until: 'yesterday' is not a date"),
    ({"since": "0001-01-01"}, "since: pick a date from 2000-01-01 to 2999-12-31."),
    ({"since": "2026-03-10", "until": "2026-03-01"}, "until (2026-03-01) is before since (2026-03-10)"),
    ({"since": "2025-01-01", "until": "2026-03-01"}, "The range is 425 days; pick at most 400 days."),
    ({"since": "2026-01-01", "until": "2026-03-01", "interval": "hour"}, "Hourly buckets cover at most 31 days"),
    ({"interval": "week"}, "interval must be one of day, hour"),
    ({"step": ["signed_up", "nope_event"]}, "Unknown event name(s): nope_event."),
    ({"step": ["signed_up"]}, "A funnel has 2 to 6 steps; this one has 1."),
    ({"step": ["signed_up", "email_verified"] * 4}, "A funnel has 2 to 6 steps; this one has 8."),
    ({"step": ["signed_up", "paid"], "window": "0"}, "The conversion window must be from 1 minute to 90 days"),
    ({"step": ["signed_up", "paid"], "window": "91"}, "The conversion window must be from 1 minute to 90 days"),
    ({"step": ["signed_up", "paid"], "window": "2", "window_unit": "weeks"}, "window_unit must be one of"),
    ({"step": ["signed_up", "paid"], "window": "two"}, "window: 'two' is not a whole number."),
    ({"step": ["signed_up", "paid"], "window": "9" * 30}, "The conversion window must be from 1 minute to 90 days"),
    ({"step": ["signed_up", "paid"], "window": "-5"}, "The conversion window must be from 1 minute to 90 days"),
    ({"step": ["signed_up", "signed_up"], "order": "any"}, "In any order, each step must be a different event"),
    ({"step": ["signed_up", "paid"], "breakdown": "country"}, "breakdown must be empty, plan or cohort."),
])
def test_each_bad_parameter_is_a_400_page_that_says_what_to_fix(client, staff, recorded, query, message):
    response = client.get(URL, query)
    body = html.unescape(response.content.decode())

    assert response.status_code == 400
    assert message in body
    assert 'role="alert"' in body and 'id="funnel-builder"' in body  # the forms stay, to correct

    as_csv = client.get(URL, {**query, "format": "csv", "table": "pages"})
    assert as_csv.status_code == 400 and message in as_csv.content.decode()


def test_an_unknown_csv_table_or_a_funnel_csv_without_steps_is_a_400(client, staff, recorded):
    unknown = client.get(URL, {"format": "csv", "table": "secrets"})
    assert unknown.status_code == 400 and "table must be one of timeseries, pages" in unknown.content.decode()
    stepless = client.get(URL, {"format": "csv", "table": "funnel"})
    assert stepless.status_code == 400 and "Choose the funnel's steps" in stepless.content.decode()


# ----------------------------------------------------------------------------- the API


def _key(user, scopes) -> APIClient:
    _, key = apikey_create(user=user, name="analytics", scopes=scopes)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


API = ["/api/analytics/timeseries", "/api/analytics/top?dimension=pages", "/api/analytics/events",
       "/api/analytics/funnel?step=signed_up&step=email_verified"]


@pytest.mark.parametrize("path", API)
def test_the_api_needs_the_scope_and_staff(path, recorded):
    staff, outsider = user_make(is_staff=True), user_make()

    assert APIClient().get(path).status_code == 401
    without_scope = _key(staff, ["account:read"]).get(path)
    assert without_scope.status_code == 403 and "`analytics:read`" in without_scope.json()["error"]["message"]
    not_staff = _key(outsider, ["analytics:read"]).get(path)
    assert not_staff.status_code == 403
    assert not_staff.json()["error"]["message"] == "The analytics API is for staff, and this account is not staff."
    assert _key(staff, ["analytics:read"]).get(path).status_code == 200


def test_a_staff_session_needs_its_second_factor_for_the_api(client, recorded):
    user = user_make(is_staff=True)
    client.force_login(user)
    assert client.get("/api/analytics/events").status_code == 403
    staff_login(client, user)
    assert client.get("/api/analytics/events").status_code == 200


def test_the_api_returns_the_selectors_figures(recorded):
    api = _key(user_make(is_staff=True), ["analytics:read"])
    since = datetime.combine(TODAY - timedelta(days=29), datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    series = api.get("/api/analytics/timeseries").json()
    assert (series["visitors"], series["pageviews"], series["previous_pageviews"]) == (2, 3, 1)
    assert len(series["buckets"]) == len(series["previous"]) == 30

    top = api.get("/api/analytics/top", {"dimension": "devices", "limit": 1}).json()
    assert top == [{"label": "desktop", "count": 2, "visitors": 1}]

    events = api.get("/api/analytics/events").json()
    assert [(e["name"], e["count"]) for e in events] == [
        (e.name, e.count) for e in analytics_events_by_name(since=since, until=until)]

    funnel = api.get("/api/analytics/funnel", {"step": ["signed_up", "email_verified", "paid"],
                                               "window_seconds": 3600 * 3, "ordered": "true",
                                               "breakdown": "plan"}).json()
    assert [s["users"] for s in funnel["total"]["steps"]] == [3, 2, 1]
    assert funnel["total"]["steps"][1]["median_s"] == 3600.0
    assert [(g["key"], [s["users"] for s in g["steps"]]) for g in funnel["groups"]] == [
        ("free", [2, 1, 0]), ("pro", [1, 1, 1])]
    # A window one second short of the payment (3 h after signing up) loses it.
    short = api.get("/api/analytics/funnel", {"step": ["signed_up", "paid"], "window_seconds": 3 * 3600 - 1}).json()
    assert [s["users"] for s in short["total"]["steps"]] == [3, 0]


@pytest.mark.parametrize(("path", "query", "message"), [
    ("timeseries", {"since": "03/01/2026"}, "since: Write the date as YYYY-MM-DD."),
    ("events", {"since": "0001-01-01", "until": "0001-01-02"}, "since: Pick a date from 2000-01-01 to 2999-12-31."),
    ("timeseries", {"since": "2026-03-10", "until": "2026-03-01"}, "until (2026-03-01) is before since (2026-03-10)"),
    ("events", {"since": "2025-01-01", "until": "2026-03-01"}, "The range is 425 days; ask for at most 400."),
    ("timeseries", {"interval": "minute"}, "interval: \"minute\" is not a valid choice."),
    ("top", {}, "dimension: This field is required."),
    ("top", {"dimension": "emails"}, "dimension: \"emails\" is not a valid choice."),
    ("funnel", {"step": ["signed_up", "nope_event"]}, "step: Unknown event name(s): nope_event"),
    ("funnel", {"step": ["signed_up"]}, "step: Ensure this field has at least 2 elements."),
    ("funnel", {"step": ["signed_up", "paid"], "window_seconds": 59}, "window_seconds: Ensure this value is greater"),
    ("funnel", {"step": ["signed_up", "paid"], "window_seconds": 91 * 86400},
     "window_seconds: Ensure this value is less"),
    ("funnel", {"step": ["paid", "paid"], "ordered": "false"}, "In any order, each step must be a different event."),
])
def test_each_bad_api_parameter_is_a_400_naming_it(recorded, path, query, message):
    api = _key(user_make(is_staff=True), ["analytics:read"])

    response = api.get(f"/api/analytics/{path}", query)

    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_the_api_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for name in ("timeseries", "top", "events", "funnel"):
        operation = schema["paths"][f"/api/analytics/{name}"]["get"]
        assert operation["operationId"] == f"analytics_{name}" and "400" in operation["responses"]
    params = {p["name"] for p in schema["paths"]["/api/analytics/funnel"]["get"]["parameters"]}
    assert {"step", "window_seconds", "ordered", "breakdown", "since", "until"} <= params



def test_no_hostile_value_in_any_field_of_the_page_gets_a_5xx(client, staff, recorded):
    from common.fuzz import HOSTILE_VALUES_QUICK, pages_fuzz

    client.raise_request_exception = False  # a crash is a 500 to count, not an exception here

    def get(path: str, params: dict) -> tuple[int, str]:
        response = client.get(path, params)
        return response.status_code, response.content.decode(errors="replace")

    def post(path: str, data: dict, files: dict) -> tuple[int, str]:
        return client.post(path, data).status_code, ""

    pages = [URL, f"{URL}?step=signed_up&step=email_verified&breakdown=cohort&order=any",
             f"{URL}?format=csv&table=funnel&step=signed_up&step=paid"]
    report = pages_fuzz(get=get, post=post, pages=pages, values=[*HOSTILE_VALUES_QUICK, "-1", "0", "0001-01-01"])

    assert report.requests > 200
    assert report.findings == [], "\n".join(map(str, report.findings))
