"""Admin is reached through allauth's log-in, and staff need an authenticator code in the session."""

from __future__ import annotations

import pytest

from accounts.tests.factories import PASSWORD, staff_login, totp_code, totp_secret_for, user_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return user_make(email="ops@example.com", is_staff=True, is_superuser=True)


def test_admin_has_no_log_in_form_of_its_own(client, staff):
    response = client.get("/admin/")
    login = client.get("/admin/login/?next=/admin/inference/")
    posted = client.post("/admin/login/", {"username": staff.email, "password": PASSWORD})

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert login.status_code == 302 and login["Location"] == "/accounts/login/?next=%2Fadmin%2Finference%2F"
    assert posted.status_code == 302 and posted["Location"].startswith("/accounts/login/")
    assert client.get("/admin/").status_code == 302  # the admin form's POST signed nobody in


def test_staff_with_a_password_only_are_sent_to_set_up_an_authenticator(client, staff):
    client.force_login(staff)

    page = client.get("/admin/", follow=True)

    # (allauth asks for the password again first: this session's sign-in is not recent.)
    assert "/accounts/2fa/totp/activate/" in [url for url, _ in page.redirect_chain]
    assert "Admin needs a second factor" in page.content.decode()


def test_a_session_without_a_code_is_asked_for_one_then_admin_opens(client, staff):
    secret = totp_secret_for(staff)
    client.post("/accounts/login/", {"login": staff.email, "password": PASSWORD})
    # allauth asks for the code at log-in once an authenticator exists.
    stage = client.get("/accounts/2fa/authenticate/")
    assert stage.status_code == 200

    done = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    admin = client.get("/admin/")

    assert done.status_code == 302
    assert admin.status_code == 200 and "Parley admin" in admin.content.decode()


def test_a_session_that_signed_in_before_the_authenticator_existed_must_enter_a_code(client, staff):
    client.force_login(staff)  # signed in with the password alone...
    secret = totp_secret_for(staff)  # ...then added an authenticator

    redirect = client.get("/admin/login/?next=/admin/")
    assert redirect["Location"] == "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F"
    assert client.get("/admin/").status_code == 302

    client.post("/accounts/2fa/reauthenticate/", {"code": totp_code(secret)})

    assert client.get("/admin/").status_code == 200


def test_non_staff_never_reach_admin(client):
    user = user_make()
    staff_login(client, user)  # even with an authenticator code in the session

    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/login/").status_code == 403


def test_the_test_helper_session_opens_admin(client, staff):
    staff_login(client, staff)

    assert client.get("/admin/").status_code == 200
