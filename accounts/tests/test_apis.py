from __future__ import annotations

import pytest

from accounts.tests.factories import user_make

pytestmark = pytest.mark.django_db


def test_me_returns_the_user_and_their_teams(client):
    user = user_make(email="kai@example.com")
    client.force_login(user)

    response = client.get("/api/me/")

    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "kai@example.com"
    assert [team["role"] for team in body["teams"]] == ["owner"]
    assert body["teams"][0]["is_personal"] is True


def test_me_refuses_an_outsider(client):
    response = client.get("/api/me/")

    assert response.status_code == 401
    assert response.json()["error"]["message"]
    assert response["WWW-Authenticate"] == "Bearer"
