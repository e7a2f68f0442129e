"""API keys are kept per process (accounts.selectors.APIKEYS); a change reaches the next request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.selectors import apikey_authenticate
from inference.tests.factories import api_key_make

# Transactional: the copy is never used inside a transaction, which is where django_db tests run.
pytestmark = [pytest.mark.django_db(transaction=True)]


def _me(client, secret: str) -> int:
    return client.get("/api/usage/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code


def test_a_warm_key_authenticates_without_a_query():
    api_key, secret = api_key_make()
    apikey_authenticate(key=secret)
    with CaptureQueriesContext(connection) as queries:
        found = apikey_authenticate(key=secret)
    assert found.pk == api_key.pk and found.user.pk == api_key.user.pk
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_revoked_key_is_refused_on_the_next_request(client):
    api_key, secret = api_key_make()
    assert _me(client, secret) == 200 and _me(client, secret) == 200  # cached now
    client.force_login(api_key.user)
    client.post(f"/app/keys/{api_key.pk}/revoke/")
    client.logout()
    assert _me(client, secret) == 401


def test_a_deactivated_users_key_is_refused_on_the_next_request(client):
    api_key, secret = api_key_make()
    assert _me(client, secret) == 200
    user = api_key.user
    user.is_active = False
    user.save()
    assert _me(client, secret) == 401


def test_a_scope_taken_away_is_refused_on_the_next_request(client):
    api_key, secret = api_key_make()
    assert _me(client, secret) == 200
    api_key.scopes = [scope for scope in api_key.scopes if scope != "usage:read"]
    api_key.save()
    assert _me(client, secret) == 403


def test_a_view_changing_its_user_changes_no_one_elses(rf):
    from accounts.authentication import ApiKeyAuthentication

    _, secret = api_key_make()
    request = rf.get("/api/usage/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    user, _ = ApiKeyAuthentication().authenticate(request)
    user.name = "changed by a view"
    again, _ = ApiKeyAuthentication().authenticate(rf.get("/", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    assert again.name != "changed by a view"
