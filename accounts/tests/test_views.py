from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from accounts.models import ApiKey, Membership, User
from accounts.tests.factories import PASSWORD, user_make

pytestmark = pytest.mark.django_db


def test_signup_creates_user_with_personal_team_and_sends_verification(client):
    response = client.post(
        "/accounts/signup/", {"email": "lin@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 302
    user = User.objects.get(email="lin@example.com")
    assert Membership.objects.filter(user=user, role="owner", team__is_personal=True).count() == 1
    assert not EmailAddress.objects.get(user=user).verified
    assert len(mail.outbox) == 1
    assert "Parley" in mail.outbox[0].subject
    assert re.search(r"/accounts/confirm-email/[^/\s]+/", mail.outbox[0].body)


def test_unverified_user_cannot_log_in(client):
    user_make(email="new@example.com", verified=False)

    response = client.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert "/accounts/confirm-email/" in response["Location"]
    assert "_auth_user_id" not in client.session


def test_app_shell_requires_login(client):
    response = client.get("/app/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_app_shell_lists_the_users_teams(client):
    user = user_make(email="mo@example.com")
    client.force_login(user)

    response = client.get("/app/")

    assert response.status_code == 200
    body = response.content.decode()
    # The personal team is named after the friendlier stand-in for the local part ("Mo").
    assert "Mo&#x27;s team" in body or "Mo's team" in body
    assert "Owner" in body


def test_landing_page_explains_the_product(client):
    response = client.get("/")

    assert response.status_code == 200
    assert "Parley" in response.content.decode()


def test_an_api_key_name_with_nul_is_a_400_with_a_message(client):
    client.force_login(user_make())

    response = client.post("/app/keys/", {"name": "ci\x00key"})

    assert response.status_code == 400 and "control character (NUL)" in response.content.decode()
    assert not ApiKey.objects.exists()
