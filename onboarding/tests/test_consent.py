"""Consent: the service (anonymous and signed-in, signals, sign-in adoption), the form endpoint with each
bad input, an outsider's post, the banner on pages, the privacy page and the profile's section."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory

from accounts.tests.factories import PASSWORD, user_make
from common.errors import ApplicationError
from onboarding.models import AnalyticsEvent, Consent, ConsentRecord
from onboarding.services import CONSENT_COOKIE, consent_set

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}
VERSION = "2026-12"


@pytest.fixture(autouse=True)
def policy(settings):
    settings.PARLEY_ANALYTICS_POLICY_VERSION = VERSION


def anonymous_request(cookie: str = "", **headers):
    request = RequestFactory().post("/privacy/consent/", **headers)
    request.user = AnonymousUser()
    if cookie:
        request.COOKIES[CONSENT_COOKIE] = cookie
    return request


# ----------------------------------------------------------------------------- the service


def test_an_anonymous_choice_is_logged_and_returned_as_the_cookie_and_no_profile_row():
    saved = consent_set(choice="analytics", source="banner", request=anonymous_request())

    choice, version, subject = saved.cookie.split(".")
    assert (choice, version) == ("analytics", VERSION) and len(subject) >= 8
    record = ConsentRecord.objects.get()
    assert (record.subject, record.user, record.choice, record.source, record.policy_version, record.signal) == \
        (subject, None, "analytics", "banner", VERSION, "")
    assert not Consent.objects.exists()


def test_a_changed_mind_keeps_the_visitors_subject_so_the_records_tie_together():
    first = consent_set(choice="analytics", source="banner", request=anonymous_request())
    second = consent_set(choice="necessary", source="settings", request=anonymous_request(first.cookie))

    assert second.cookie.rsplit(".", 1)[1] == first.cookie.rsplit(".", 1)[1]
    assert list(ConsentRecord.objects.order_by("id").values_list("choice", "source")) == \
        [("analytics", "banner"), ("necessary", "settings")]
    assert ConsentRecord.objects.values("subject").distinct().count() == 1


def test_a_signed_in_users_choice_is_their_profile_row_and_each_change_is_logged():
    user = user_make()

    consent_set(choice="analytics", source="banner", user=user)
    consent_set(choice="necessary", source="settings", user=user)

    row = Consent.objects.get(user=user)
    assert (row.choice, row.policy_version) == ("necessary", VERSION)
    assert list(ConsentRecord.objects.order_by("id").values_list("subject", "user", "choice")) == \
        [(f"user:{user.pk}", user.pk, "analytics"), (f"user:{user.pk}", user.pk, "necessary")]


@pytest.mark.parametrize(("header", "signal"), [({"HTTP_DNT": "1"}, "dnt"), ({"HTTP_SEC_GPC": "1"}, "gpc")])
def test_dnt_or_gpc_on_the_request_turns_analytics_into_necessary(header, signal):
    saved = consent_set(choice="analytics", source="banner", request=anonymous_request(**header))

    assert (saved.choice, saved.source, saved.signal, saved.overridden) == ("necessary", "signal", signal, True)
    assert saved.cookie.startswith("necessary.")
    record = ConsentRecord.objects.get()
    assert (record.choice, record.source, record.signal) == ("necessary", "signal", signal)


def test_a_signal_the_browser_reports_itself_is_recorded_as_such():
    user = user_make()

    saved = consent_set(choice="necessary", source="signal", signal="gpc", user=user)

    assert (saved.choice, saved.signal) == ("necessary", "gpc")
    assert Consent.objects.get(user=user).choice == "necessary"
    assert ConsentRecord.objects.get().signal == "gpc"


@pytest.mark.parametrize(("fields", "says"), [
    ({"choice": "everything", "source": "banner"}, "choice must be one of: necessary, analytics"),
    ({"choice": "analytics", "source": "mail"}, "source must be one of: banner, settings, sign_in, signal"),
    ({"choice": "necessary", "source": "signal", "signal": "please"}, "signal must be empty or one of: dnt, gpc"),
    ({"choice": "necessary", "source": "signal"}, "source signal needs a signal"),
])
def test_each_bad_argument_is_refused_and_nothing_is_written(fields, says):
    with pytest.raises(ApplicationError) as error:
        consent_set(request=anonymous_request(), **fields)

    assert says in error.value.message and error.value.status == 400
    assert not ConsentRecord.objects.exists()


# ----------------------------------------------------------------------------- sign-in adoption


def test_the_banners_choice_before_sign_in_is_adopted_by_a_user_without_one(client):
    user = user_make()
    client.post("/privacy/consent/", {"choice": "analytics", "source": "banner"})

    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    row = Consent.objects.get(user=user)
    assert (row.choice, row.policy_version) == ("analytics", VERSION)
    adopted = ConsentRecord.objects.get(user=user)
    assert (adopted.source, adopted.subject) == ("sign_in", f"user:{user.pk}")


def test_a_users_own_current_choice_wins_over_the_browsers_at_sign_in(client):
    user = user_make()
    consent_set(choice="necessary", source="settings", user=user)
    client.post("/privacy/consent/", {"choice": "analytics", "source": "banner"})

    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    assert Consent.objects.get(user=user).choice == "necessary"
    assert not ConsentRecord.objects.filter(source="sign_in").exists()


def test_a_choice_under_an_older_policy_version_is_not_adopted(client, settings):
    user = user_make()
    settings.PARLEY_ANALYTICS_POLICY_VERSION = "2025-01"
    client.post("/privacy/consent/", {"choice": "analytics", "source": "banner"})
    settings.PARLEY_ANALYTICS_POLICY_VERSION = VERSION

    client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    assert not Consent.objects.filter(user=user).exists()


# ----------------------------------------------------------------------------- POST /privacy/consent/


def test_the_banners_form_post_sets_the_cookie_logs_it_and_goes_back(client):
    response = client.post("/privacy/consent/", {"choice": "analytics", "source": "banner", "next": "/app/badges/"})

    assert response.status_code == 302 and response["Location"] == "/app/badges/"
    cookie = response.cookies[CONSENT_COOKIE]
    assert cookie.value.startswith(f"analytics.{VERSION}.") and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert ConsentRecord.objects.get().source == "banner"


def test_a_fetch_gets_the_stored_choice_as_json(client):
    response = client.post("/privacy/consent/", {"choice": "necessary", "source": "settings"}, **JSON)

    assert response.status_code == 200
    assert response.json() == {"choice": "necessary", "source": "settings", "signal": "",
                               "message": "Saved: necessary only. Parley runs no analytics for you."}
    assert response.cookies[CONSENT_COOKIE].value.startswith("necessary.")


def test_a_next_url_on_another_site_is_ignored(client):
    response = client.post("/privacy/consent/", {"choice": "necessary", "next": "https://evil.example/"})

    assert response["Location"] == "/privacy/"


def test_with_dnt_an_analytics_choice_is_stored_as_necessary_and_the_answer_says_why(client):
    response = client.post("/privacy/consent/", {"choice": "analytics", "source": "banner"}, HTTP_DNT="1", **JSON)

    body = response.json()
    assert (body["choice"], body["source"], body["signal"]) == ("necessary", "signal", "dnt")
    assert "Do Not Track" in body["message"] and "no analytics run" in body["message"]
    assert response.cookies[CONSENT_COOKIE].value.startswith("necessary.")


@pytest.mark.parametrize(("fields", "code", "says"), [
    ({"choice": "all", "source": "banner"}, "invalid_choice", "choice must be one of: necessary, analytics."),
    ({"source": "banner"}, "invalid_choice", "choice must be one of: necessary, analytics."),
    ({"choice": "analytics", "source": "sign_in"}, "invalid_source",
     "source must be one of: banner, settings, signal."),
    ({"choice": "necessary", "source": "signal", "signal": "yes"}, "invalid_signal", "signal must be empty or one of"),
])
def test_each_bad_post_is_a_400_that_names_the_allowed_values(client, fields, code, says):
    as_json = client.post("/privacy/consent/", fields, **JSON)
    as_form = client.post("/privacy/consent/", fields)

    assert as_json.status_code == 400 and as_json.json()["error"] == code and says in as_json.json()["message"]
    assert as_form.status_code == 400 and says in as_form.content.decode()
    assert CONSENT_COOKIE not in as_json.cookies and not ConsentRecord.objects.exists()


def test_the_post_needs_the_csrf_token_and_a_get_is_refused():
    client = Client(enforce_csrf_checks=True)

    assert client.post("/privacy/consent/", {"choice": "analytics"}).status_code == 403
    assert client.get("/privacy/consent/").status_code == 405
    assert not ConsentRecord.objects.exists()


def test_an_outsider_cannot_change_another_users_choice(client):
    alice, bob = user_make(), user_make()
    consent_set(choice="analytics", source="banner", user=alice)
    client.force_login(bob)

    client.post("/privacy/consent/", {"choice": "necessary", "source": "settings", "user": alice.pk,
                                      "subject": f"user:{alice.pk}"})

    assert Consent.objects.get(user=alice).choice == "analytics"
    assert Consent.objects.get(user=bob).choice == "necessary"
    assert list(ConsentRecord.objects.filter(user=alice).values_list("choice", flat=True)) == ["analytics"]


# ----------------------------------------------------------------------------- the banner on pages


def banner_of(body: str) -> str:
    start = body.index('<section class="consent"')
    return body[start:body.index(">", start) + 1]


def test_the_banner_asks_on_a_first_visit_and_not_after_a_choice(client):
    first = client.get("/").content.decode()
    client.post("/privacy/consent/", {"choice": "necessary", "source": "banner"})
    later = client.get("/").content.decode()

    assert 'data-mode="ask"' in banner_of(first) and " hidden" not in banner_of(first)
    assert "Necessary only" in first and "Allow analytics" in first and 'id="consent-state"' in first
    assert " hidden" in banner_of(later)


def test_a_signed_in_user_without_a_current_choice_is_asked_and_one_with_a_choice_is_not(client, settings):
    user = user_make()
    client.force_login(user)
    assert " hidden" not in banner_of(client.get("/app/badges/").content.decode())

    consent_set(choice="analytics", source="banner", user=user)
    assert " hidden" in banner_of(client.get("/app/badges/").content.decode())

    settings.PARLEY_ANALYTICS_POLICY_VERSION = "2027-06"  # a new policy asks again
    assert " hidden" not in banner_of(client.get("/app/badges/").content.decode())


def test_with_gpc_the_banner_says_why_it_does_not_ask(client):
    body = client.get("/", HTTP_SEC_GPC="1").content.decode()

    assert 'data-mode="notice"' in banner_of(body) and " hidden" not in banner_of(body)
    assert "(<span data-consent-signal-name>Global Privacy Control</span>), so Parley runs no analytics" in body


def test_every_page_has_the_privacy_links_in_its_footer(client):
    body = client.get("/accounts/login/").content.decode()

    assert '<a href="/privacy/" data-analytics-event="footer.privacy">Privacy</a>' in body
    assert '<a href="/privacy/#privacy-settings" data-consent-open>Privacy settings</a>' in body


# ----------------------------------------------------------------------------- /privacy/ and the profile


def test_the_privacy_page_is_generated_from_the_settings(client, settings):
    settings.PARLEY_ANALYTICS_RETENTION_DAYS = 123
    settings.UMAMI_URL = ""

    body = client.get("/privacy/").content.decode()

    assert "Policy version 2026-12" in body and "Analytics events: 123 days" in body
    assert "Consent records" in body and "Your IP address" in body and "changes every day" in body
    assert "Do Not Track" in body and "Global Privacy Control" in body
    assert "Umami" not in body and "no GeoIP file" in body
    for field in AnalyticsEvent._meta.concrete_fields:
        assert f"<dt><code>{field.name}</code></dt>" in body

    settings.UMAMI_URL = "https://umami.example"
    assert "self-hosted Umami" in client.get("/privacy/").content.decode()


def test_the_privacy_page_offers_the_choice_and_says_the_current_one(client):
    client.post("/privacy/consent/", {"choice": "analytics", "source": "banner"})

    body = client.get("/privacy/").content.decode()

    assert 'id="privacy-settings"' in body and "You allowed analytics." in body
    assert 'name="choice" value="analytics"' in body and 'name="source" value="settings"' in body


def test_the_profile_has_a_privacy_section_that_changes_the_choice(client):
    user = user_make()
    client.force_login(user)
    assert "You haven't chosen yet" in client.get("/app/profile/").content.decode()

    response = client.post("/privacy/consent/", {"choice": "analytics", "source": "settings",
                                                 "next": "/app/profile/#profile-privacy"})

    assert response["Location"] == "/app/profile/#profile-privacy"
    body = client.get("/app/profile/").content.decode()
    assert 'id="profile-privacy"' in body and "You allow product analytics" in body
    assert Consent.objects.get(user=user).choice == "analytics"
