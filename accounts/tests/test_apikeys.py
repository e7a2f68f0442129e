from __future__ import annotations

import pytest

from accounts.models import ApiKey
from accounts.tests.factories import user_make
from inference.tests.factories import api_key_make

pytestmark = pytest.mark.django_db


def test_key_is_shown_once_and_only_its_hash_is_stored(client):
    user = user_make()
    client.force_login(user)

    response = client.post("/app/keys/", {"name": "Support bot"})

    body = response.content.decode()
    api_key = ApiKey.objects.get(user=user)
    secret = body.split('<code id="new-key">')[1].split("</code>")[0]
    assert secret.startswith(f"pk-{api_key.prefix}.")
    assert secret not in api_key.key_hash
    assert secret not in client.get("/app/keys/").content.decode()
    assert client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


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
