"""Team invitations: create, re-send, revoke, accept.

The link carries a token signed with the site's secret (`django.core.signing`, its own salt)
holding the invitation's id and nonce. It is single use (accepting sets `accepted_at` with a
guarded UPDATE), expires after INVITATION_DAYS (the row's `expires_at` decides; the signature's
age is checked too), can be revoked, and a re-send draws a new nonce, so only the newest link
works. The row doubles as the mail's outbox entry: `sent_at` is set by the task once the mail
went out (accounts.tasks.invitation_send).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Team, User
from accounts.services.teams import team_require_manager
from accounts.services.users import membership_add
from common.errors import ApplicationError
from onboarding.services import Event, event_record

INVITATION_DAYS = 7
SALT = "parley.accounts.invitation"


def invitation_token(invitation: Invitation) -> str:
    return signing.dumps([invitation.pk, invitation.nonce], salt=SALT, compress=False)


def invitation_link(invitation: Invitation) -> str:
    path = reverse("invitation", args=[invitation_token(invitation)])
    return settings.PARLEY_BASE_URL.rstrip("/") + path


def _send_on_commit(invitation: Invitation) -> None:
    from accounts.tasks import invitation_send

    invitation_id, nonce = invitation.pk, invitation.nonce
    transaction.on_commit(lambda: invitation_send.delay(invitation_id, nonce))


@transaction.atomic
def invitation_create(*, team: Team, by: User, email: str, role: str = Membership.Role.MEMBER) -> Invitation:
    """Invite `email` to the team and queue the mail. Owners and admins only."""
    team_require_manager(team=team, user=by)
    email = User.objects.normalize_email((email or "").strip())
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError("Enter a valid email address, like name@example.com.", code="invalid_email")
    if role not in (Membership.Role.MEMBER, Membership.Role.ADMIN):
        raise ApplicationError("Invite people as a member or an admin; make them an owner once they joined.",
                               code="invalid_role")
    if Membership.objects.filter(team=team, user__email__iexact=email).exists():
        raise ApplicationError(f"{email} is already a member of {team.name}.", code="already_member", status=409)
    open_invitation = Invitation.objects.filter(team=team, email__iexact=email, accepted_at__isnull=True,
                                                revoked_at__isnull=True).first()
    if open_invitation is not None:
        if open_invitation.state == Invitation.State.PENDING:
            raise ApplicationError(f"{email} already has a pending invitation to {team.name}. Re-send it from the "
                                   "list of invitations instead.", code="already_invited", status=409)
        # An expired one is renewed rather than duplicated (one open invitation per address).
        return invitation_resend(invitation=open_invitation, by=by)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                team=team, email=email, role=role, invited_by=by, nonce=secrets.token_hex(16),
                expires_at=timezone.now() + timedelta(days=INVITATION_DAYS),
            )
    except IntegrityError:  # the same address invited twice at once
        raise ApplicationError(f"{email} already has a pending invitation to {team.name}.",
                               code="already_invited", status=409)
    _send_on_commit(invitation)
    event_record(user_id=by.pk, name=Event.INVITATION_SENT, data={"team": team.pk})
    return invitation


@transaction.atomic
def invitation_resend(*, invitation: Invitation, by: User) -> Invitation:
    """Mail a new link (the old one stops working) valid for another INVITATION_DAYS."""
    team_require_manager(team=invitation.team, user=by)
    nonce = secrets.token_hex(16)
    expires_at = timezone.now() + timedelta(days=INVITATION_DAYS)
    renewed = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
        nonce=nonce, expires_at=expires_at, sent_at=None)
    if not renewed:
        raise ApplicationError("This invitation was already accepted or revoked; send a new one instead.",
                               code="invitation_closed", status=409)
    invitation.nonce, invitation.expires_at, invitation.sent_at = nonce, expires_at, None
    _send_on_commit(invitation)
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by: User) -> Invitation:
    team_require_manager(team=invitation.team, user=by)
    revoked = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    if not revoked:
        raise ApplicationError("This invitation was already accepted or revoked.", code="invitation_closed",
                               status=409)
    invitation.refresh_from_db()
    return invitation


def invitation_from_token(*, token: str) -> Invitation:
    """The invitation a link points at, whatever its state; a forged or mangled link is a 404."""
    try:
        invitation_id, nonce = signing.loads(token, salt=SALT, max_age=timedelta(days=INVITATION_DAYS + 1))
    except signing.SignatureExpired:
        raise ApplicationError("This invitation link has expired. Ask the person who invited you to send a new "
                               "one.", code="invitation_expired", status=410)
    except (signing.BadSignature, ValueError, TypeError):
        raise ApplicationError("This invitation link is not valid. Check that you copied all of it.",
                               code="invitation_invalid", status=404)
    invitation = Invitation.objects.select_related("team", "invited_by").filter(pk=invitation_id).first()
    if invitation is None:
        raise ApplicationError("This invitation no longer exists.", code="invitation_invalid", status=404)
    if not secrets.compare_digest(invitation.nonce, str(nonce)):
        raise ApplicationError("A newer link was sent for this invitation; use the one in the latest email.",
                               code="invitation_superseded", status=410)
    return invitation


def invitation_check(*, invitation: Invitation, user: User | None = None) -> None:
    """Refuse with a clear message unless `user` (if given) may accept the invitation now."""
    state = invitation.state
    if state == Invitation.State.ACCEPTED:
        raise ApplicationError("This invitation was already used. Each link works once; ask for a new one if you "
                               "need it.", code="invitation_used", status=410)
    if state == Invitation.State.REVOKED:
        raise ApplicationError("This invitation was withdrawn by the team.", code="invitation_revoked", status=410)
    if state == Invitation.State.EXPIRED:
        raise ApplicationError("This invitation has expired. Ask the person who invited you to send a new one.",
                               code="invitation_expired", status=410)
    if user is not None and user.email.lower() != invitation.email.lower():
        raise ApplicationError(f"This invitation is for {invitation.email}, but you are signed in as {user.email}. "
                               "Log out and open the link again, or ask for an invitation to your address.",
                               code="invitation_other_user", status=403)


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Join the team the link invites to. Once: a second accept (or a race of two) is refused."""
    invitation = invitation_from_token(token=token)
    invitation_check(invitation=invitation, user=user)
    if Membership.objects.filter(team=invitation.team, user=user).exists():
        raise ApplicationError(f"You are already a member of {invitation.team.name}.", code="already_member",
                               status=409)
    claimed = Invitation.objects.filter(pk=invitation.pk, nonce=invitation.nonce, accepted_at__isnull=True,
                                        revoked_at__isnull=True, expires_at__gt=timezone.now()).update(
        accepted_at=timezone.now(), accepted_by=user)
    if not claimed:
        raise ApplicationError("This invitation was already used. Each link works once.", code="invitation_used",
                               status=410)
    membership = membership_add(team=invitation.team, user=user, role=invitation.role)
    event_record(user_id=invitation.invited_by_id, name=Event.INVITEE_JOINED,
                 data={"team": invitation.team_id, "invitee": user.pk})
    return membership


def invitation_mark_sent(*, invitation_id: int, nonce: str) -> bool:
    """After the mail went out: record it, unless the link it carried was replaced meanwhile."""
    return bool(Invitation.objects.filter(pk=invitation_id, nonce=nonce).update(
        sent_at=timezone.now(), send_count=F("send_count") + 1))
