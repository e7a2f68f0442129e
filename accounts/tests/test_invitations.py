"""Invitations: round trips for an existing and a new user, the mail, and every refusal."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.utils import timezone

from accounts.models import Invitation, Membership
from accounts.services import (
    invitation_accept,
    invitation_create,
    invitation_resend,
    invitation_revoke,
    invitation_token,
    membership_add,
)
from accounts.tasks import invitation_send
from accounts.tests.factories import PASSWORD, user_make
from common.errors import ApplicationError
from knowledge.tests.factories import team_make
from onboarding.models import Award

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def seeded(db) -> None:
    from onboarding.seed import onboarding_seed

    onboarding_seed()


@pytest.fixture
def owner():
    return user_make(email="owner@example.com", name="Olga Owner")


@pytest.fixture
def team(owner):
    return team_make(owner=owner, name="Support")


def refused(code: str, call, *args, **kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


# ------------------------------------------------------------------------ round trips


def test_an_existing_user_accepts_while_signed_in(client, owner, team):
    invitee = user_make(email="Ivy@Example.com")
    invitation = invitation_create(team=team, by=owner, email="ivy@example.com", role="admin")
    client.force_login(invitee)
    url = f"/app/invitations/{invitation_token(invitation)}/"

    page = client.get(url)
    accepted = client.post(url)

    assert "Accept and join Support" in page.content.decode()
    assert accepted.status_code == 302 and accepted["Location"] == f"/app/teams/{team.pk}/"
    assert Membership.objects.get(team=team, user=invitee).role == "admin"
    invitation.refresh_from_db()
    assert invitation.state == "accepted" and invitation.accepted_by == invitee
    assert list(Award.objects.filter(user=owner).values_list("badge__slug", flat=True)) == ["community-builder"]


def test_a_new_address_signs_up_through_the_link_and_joins(client, owner, team):
    invitation = invitation_create(team=team, by=owner, email="newbie@example.com")
    url = f"/app/invitations/{invitation_token(invitation)}/"

    page = client.get(url)
    signup = client.get("/accounts/signup/?next=" + url)
    response = client.post("/accounts/signup/?next=" + url, {
        "email": "newbie@example.com", "name": "Newbie", "password1": PASSWORD, "password2": PASSWORD})

    assert "Create an account" in page.content.decode()
    assert 'value="newbie@example.com"' in signup.content.decode()  # the address comes filled in
    # The link proved the address: no verification mail, signed in, joined, and on the team's page.
    assert response.status_code == 302 and response["Location"] == f"/app/teams/{team.pk}/"
    assert mail.outbox == []
    membership = Membership.objects.get(team=team, user__email="newbie@example.com")
    assert membership.role == "member" and membership.user.name == "Newbie"
    assert membership.user.journey.verified_at is not None
    assert client.get(f"/app/teams/{team.pk}/").status_code == 200


def test_an_existing_user_who_logs_in_through_the_link_joins(client, owner, team):
    user_make(email="later@example.com")
    invitation = invitation_create(team=team, by=owner, email="later@example.com")
    url = f"/app/invitations/{invitation_token(invitation)}/"
    client.get(url)

    response = client.post("/accounts/login/?next=" + url, {"login": "later@example.com", "password": PASSWORD})

    assert response["Location"] == f"/app/teams/{team.pk}/"
    assert Membership.objects.filter(team=team, user__email="later@example.com").exists()


def test_the_mail_carries_the_link_and_is_marked_sent_only_after_sending(owner, team, settings):
    invitation = invitation_create(team=team, by=owner, email="mailme@example.com")
    assert invitation.sent_at is None

    assert invitation_send(invitation.pk, invitation.nonce) is True

    message = mail.outbox[0]
    assert message.to == ["mailme@example.com"] and "Olga Owner invited you to Support" in message.subject
    link = re.search(r"http://\S+/app/invitations/\S+/", message.body).group(0)
    assert link.startswith(settings.PARLEY_BASE_URL) and invitation_token(invitation)[:20] in link
    invitation.refresh_from_db()
    assert invitation.sent_at is not None and invitation.send_count == 1


def test_a_resend_mails_a_new_link_and_the_old_one_stops_working(owner, team):
    invitee = user_make(email="twice@example.com")
    invitation = invitation_create(team=team, by=owner, email="twice@example.com")
    old = invitation_token(invitation)

    invitation_resend(invitation=invitation, by=owner)
    assert invitation_send(invitation.pk, invitation.nonce) is True
    assert invitation_send(invitation.pk, "an-old-nonce") is False  # a queued send of the old link

    refused("invitation_superseded", invitation_accept, token=old, user=invitee)
    invitation_accept(token=invitation_token(invitation), user=invitee)


def test_an_expired_invitation_is_renewed_by_inviting_again(owner, team):
    invitation = invitation_create(team=team, by=owner, email="slow@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    again = invitation_create(team=team, by=owner, email="slow@example.com")

    assert again.pk == invitation.pk and again.state == "pending"


# ------------------------------------------------------------------------ refusals


def test_inviting_an_existing_member_is_refused(owner, team):
    membership_add(team=team, user=user_make(email="member@example.com"))

    error = refused("already_member", invitation_create, team=team, by=owner, email="MEMBER@example.com")
    assert error.status == 409 and "already a member of Support" in error.message


def test_inviting_twice_is_refused_with_a_hint_to_resend(owner, team):
    invitation_create(team=team, by=owner, email="dup@example.com")

    error = refused("already_invited", invitation_create, team=team, by=owner, email="dup@example.com")
    assert "Re-send it" in error.message


def test_bad_addresses_and_roles_are_refused(owner, team):
    refused("invalid_email", invitation_create, team=team, by=owner, email="not an address")
    refused("invalid_role", invitation_create, team=team, by=owner, email="a@example.com", role="owner")


def test_only_owners_and_admins_invite(owner, team):
    member = user_make()
    membership_add(team=team, user=member)

    error = refused("permission_denied", invitation_create, team=team, by=member, email="x@example.com")
    assert error.status == 403
    refused("not_found", invitation_create, team=team, by=user_make(), email="x@example.com")


def test_an_expired_link_is_refused(client, owner, team):
    invitee = user_make(email="late@example.com")
    invitation = invitation_create(team=team, by=owner, email="late@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(invitee)

    response = client.post(f"/app/invitations/{invitation_token(invitation)}/")

    assert response.status_code == 410 and "has expired" in response.content.decode()
    assert not Membership.objects.filter(team=team, user=invitee).exists()


def test_a_link_older_than_its_signature_allows_is_refused(owner, team):
    """Even if the row still looked open, a link signed over 8 days ago is refused by its signature."""
    import time

    class NineDaysAgo(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time() - 9 * 86400))

    invitee = user_make(email="ancient@example.com")
    invitation = invitation_create(team=team, by=owner, email="ancient@example.com")
    token = NineDaysAgo(salt="parley.accounts.invitation").sign_object([invitation.pk, invitation.nonce])

    error = refused("invitation_expired", invitation_accept, token=token, user=invitee)
    assert error.status == 410


def test_a_reused_link_is_refused(client, owner, team):
    invitee = user_make(email="reuse@example.com")
    invitation = invitation_create(team=team, by=owner, email="reuse@example.com")
    token = invitation_token(invitation)
    invitation_accept(token=token, user=invitee)
    Membership.objects.filter(team=team, user=invitee).delete()  # even after leaving, the link is spent

    error = refused("invitation_used", invitation_accept, token=token, user=invitee)
    assert error.status == 410
    client.force_login(invitee)
    assert "already used" in client.get(f"/app/invitations/{token}/").content.decode()


def test_a_revoked_link_is_refused(owner, team):
    invitee = user_make(email="revoked@example.com")
    invitation = invitation_create(team=team, by=owner, email="revoked@example.com")

    invitation_revoke(invitation=invitation, by=owner)

    refused("invitation_revoked", invitation_accept, token=invitation_token(invitation), user=invitee)
    refused("invitation_closed", invitation_revoke, invitation=invitation, by=owner)
    refused("invitation_closed", invitation_resend, invitation=invitation, by=owner)


def test_someone_elses_invitation_is_refused(client, owner, team):
    invitation = invitation_create(team=team, by=owner, email="right@example.com")
    wrong = user_make(email="wrong@example.com")
    client.force_login(wrong)
    url = f"/app/invitations/{invitation_token(invitation)}/"

    page = client.get(url)
    post = client.post(url)

    assert page.status_code == 403 and "is for right@example.com" in page.content.decode()
    assert post.status_code == 403
    assert not Membership.objects.filter(team=team, user=wrong).exists()
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None


def test_a_forged_or_mangled_link_is_a_404(client, owner, team):
    invitation = invitation_create(team=team, by=owner, email="forge@example.com")
    forged = signing.dumps([invitation.pk, invitation.nonce], salt="some other salt")

    assert client.get(f"/app/invitations/{forged}/").status_code == 404
    assert client.get("/app/invitations/garbage/").status_code == 404
    assert client.get(f"/app/invitations/{invitation_token(invitation)[:-3]}abc/").status_code == 404


def test_accepting_when_already_a_member_is_refused(owner, team):
    member = user_make(email="already@example.com")
    invitation = invitation_create(team=team, by=owner, email="already@example.com")
    membership_add(team=team, user=member)

    refused("already_member", invitation_accept, token=invitation_token(invitation), user=member)


def test_the_team_page_lists_invitations_with_their_state(client, owner, team):
    pending = invitation_create(team=team, by=owner, email="p@example.com")
    revoked = invitation_create(team=team, by=owner, email="r@example.com")
    invitation_revoke(invitation=revoked, by=owner)
    expired = invitation_create(team=team, by=owner, email="e@example.com")
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    accepted = invitation_create(team=team, by=owner, email="a@example.com")
    invitation_accept(token=invitation_token(accepted), user=user_make(email="a@example.com"))
    client.force_login(owner)

    body = client.get(f"/app/teams/{team.pk}/").content.decode()

    for email, state in (("p", "pending"), ("r", "revoked"), ("e", "expired"), ("a", "accepted")):
        assert f'data-invitation="{email}@example.com" data-state="{state}"' in body
    assert pending.state == "pending"


def test_resend_and_revoke_through_the_page(client, owner, team):
    invitation = invitation_create(team=team, by=owner, email="page@example.com")
    client.force_login(owner)

    client.post(f"/app/teams/{team.pk}/invitations/{invitation.pk}/resend/")
    renewed = Invitation.objects.get(pk=invitation.pk)
    client.post(f"/app/teams/{team.pk}/invitations/{invitation.pk}/revoke/")

    assert renewed.nonce != invitation.nonce
    assert Invitation.objects.get(pk=invitation.pk).state == "revoked"


def test_outsiders_cannot_touch_a_teams_invitations(client, owner, team):
    invitation = invitation_create(team=team, by=owner, email="safe@example.com")
    client.force_login(user_make())

    assert client.post(f"/app/teams/{team.pk}/invitations/{invitation.pk}/revoke/").status_code == 404
    assert client.post(f"/app/teams/{team.pk}/invite/", {"email": "x@example.com"}).status_code == 404
    assert Invitation.objects.get(pk=invitation.pk).state == "pending"
