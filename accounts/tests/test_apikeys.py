from __future__ import annotations

import html

import pytest

from accounts.apikeys import SCOPES, STAFF_SCOPES
from accounts.models import ApiKey
from accounts.tests.factories import user_make
from common.plans import plan_of
from inference.tests.factories import api_key_make

pytestmark = pytest.mark.django_db


def _secret_on(body: str) -> str:
    return body.split('<code id="new-key" class="new-key__secret">')[1].split("</code>")[0]


def test_a_key_is_created_by_post_then_redirect_and_shown_once(client):
    user = user_make()
    client.force_login(user)

    response = client.post("/app/keys/", {"name": "Support bot", "scopes": ["inference", "usage:read"],
                                          "rpm_limit": "12", "tokens_per_day_limit": "40000"})

    assert response.status_code == 302 and response["Location"] == "/app/keys/"
    api_key = ApiKey.objects.get(user=user)
    assert (api_key.name, api_key.scopes) == ("Support bot", ["inference", "usage:read"])
    assert (api_key.rpm_limit, api_key.tokens_per_day_limit) == (12, 40000)
    page = client.get("/app/keys/").content.decode()
    secret = _secret_on(page)
    assert secret.startswith(f"pk-{api_key.prefix}.") and secret not in api_key.key_hash
    assert 'data-copy="new-key"' in page and "12/min" in page and "40,000 tokens/day" in page
    # Shown once: a reload of the page shows no secret and creates nothing.
    again = client.get("/app/keys/").content.decode()
    assert secret not in again and 'id="new-key"' not in again
    assert ApiKey.objects.filter(user=user).count() == 1
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 403  # no account:read
    assert client.get("/api/usage/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_the_form_offers_every_scope_but_staff_ones_ticked_and_empty_limits(client):
    client.force_login(user_make())

    body = client.get("/app/keys/").content.decode()

    offered = [scope for scope in SCOPES if scope not in STAFF_SCOPES]
    for scope in offered:
        assert f'name="scopes" value="{scope}"' in body
    assert 'value="analytics:read"' not in body
    assert body.count(" checked>") == len(offered)
    assert 'name="rpm_limit"' in body and 'name="tokens_per_day_limit"' in body
    assert 'data-confirm="Revoke' not in body  # no keys yet


@pytest.mark.parametrize(("data", "message"), [
    ({"scopes": ["inference", "admin"]}, "admin is not a scope; choose from inference, knowledge"),
    ({"scopes": []}, "Scopes: Tick at least one scope"),
    ({"rpm_limit": "0"}, "Requests per minute: Enter a whole number of requests from 1 to 2,147,483,647"),
    ({"rpm_limit": "-3"}, "Requests per minute: Enter a whole number"),
    ({"rpm_limit": "ten"}, "Requests per minute: Enter a whole number"),
    ({"tokens_per_day_limit": "2.5"}, "Tokens per day: Enter a whole number of tokens"),
    ({"tokens_per_day_limit": str(2**31)}, "Tokens per day: Enter a whole number of tokens"),
    ({"name": "ci\x00key"}, "control character (NUL)"),
    ({"name": None, "scopes": None}, "Scopes: Tick at least one scope"),  # a POST with no fields at all
])
def test_bad_input_is_a_400_that_says_what_to_fix_and_creates_nothing(client, data, message):
    client.force_login(user_make())

    fields = {key: value for key, value in {"name": "bot", "scopes": ["inference"], **data}.items()
              if value is not None}
    response = client.post("/app/keys/", fields)

    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert not ApiKey.objects.exists()


def test_staff_are_offered_analytics_read_and_others_get_a_400_for_it(client):
    staff = user_make(is_staff=True)
    client.force_login(staff)
    assert 'name="scopes" value="analytics:read"' in client.get("/app/keys/").content.decode()
    assert client.post("/app/keys/", {"name": "dash", "scopes": ["analytics:read"]}).status_code == 302
    assert ApiKey.objects.get(user=staff).scopes == ["analytics:read"]

    member = user_make()
    client.force_login(member)
    response = client.post("/app/keys/", {"name": "peek", "scopes": ["inference", "analytics:read"]})

    assert response.status_code == 400
    assert "analytics:read is for staff only; untick it." in html.unescape(response.content.decode())
    assert not ApiKey.objects.filter(user=member).exists()


def test_a_key_made_without_scopes_gets_what_its_owner_may_have():
    from accounts.services import apikey_create

    assert "analytics:read" not in apikey_create(user=user_make(), name="default")[0].scopes
    assert apikey_create(user=user_make(is_staff=True), name="default")[0].scopes == list(SCOPES)


def test_a_limit_above_the_plan_is_refused_with_the_plans_figure(client):
    user = user_make()
    client.force_login(user)
    plan = plan_of(user)

    response = client.post("/app/keys/", {"name": "bot", "scopes": ["inference"],
                                          "rpm_limit": str(plan.requests_per_minute + 1)})

    assert response.status_code == 400
    body = html.unescape(response.content.decode())
    assert f"plan allows {plan.requests_per_minute:,} requests per minute" in body
    assert f'value="{plan.requests_per_minute + 1}"' in body  # what was typed stays in the form
    assert not ApiKey.objects.exists()


def test_revoke_asks_for_confirmation_on_the_page(client):
    api_key, _ = api_key_make()
    client.force_login(api_key.user)

    body = client.get("/app/keys/").content.decode()

    assert f'action="/app/keys/{api_key.pk}/revoke/" data-confirm="Revoke test key' in body
    assert "js/confirm.js" in body and "js/copy.js" in body


def test_revoked_key_stops_working(client):
    api_key, secret = api_key_make()
    client.force_login(api_key.user)

    client.post(f"/app/keys/{api_key.pk}/revoke/")

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401


def test_outsider_cannot_revoke_someone_elses_key(client):
    api_key, secret = api_key_make()
    client.force_login(user_make())

    response = client.post(f"/app/keys/{api_key.pk}/revoke/")

    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_apikey_create_command_prints_the_key_once(capsys):
    from django.core.management import call_command

    user = user_make(email="ops@example.com")

    call_command("apikey_create", "--email", "ops@example.com", "--name", "deploy")

    secret = capsys.readouterr().out.strip()
    assert ApiKey.objects.get(user=user, name="deploy").prefix in secret
