"""Reads for users, teams and memberships."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.apikeys import KEY_PREFIX, apikey_hash
from accounts.models import ApiKey, Invitation, Membership, Team, User
from common.versioned import VersionedCache


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("-team__is_personal", "team__name")


def teams_of_user(*, user: User) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("-is_personal", "name")


def team_ids_of_user(*, user: User) -> list[int]:
    """The ids of the teams the user belongs to (for access rules that name teams)."""
    return list(Membership.objects.filter(user=user).order_by("team_id").values_list("team_id", flat=True))


def apikeys_of_user(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-id")


# Every API request authenticates its key: each process keeps the keys it has seen, with their users,
# until any key or user changes (accounts.receivers and apikey_revoke mark them changed on commit), so a
# revoked key or a deactivated user is refused by every process on its next request.
APIKEYS = VersionedCache("parley:accounts:apikeys-version")


def apikey_authenticate(*, key: str) -> ApiKey | None:
    """The active key matching `key`, with its user, or None. Read only: the object is this process's
    shared copy (apikey_touch keeps its last use current there); callers copy the user they hand on."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_hash = apikey_hash(key)
    return APIKEYS.get(key_hash, lambda: (
        ApiKey.objects.select_related("user")
        .filter(key_hash=key_hash, revoked_at__isnull=True, user__is_active=True)
        .first()
    ))


def user_get(*, user_id: int) -> User | None:
    return User.objects.filter(pk=user_id).first()


def staff_emails() -> list[str]:
    """Where operational notices (analytics alerts) go: every active staff member with an address."""
    return list(User.objects.filter(is_staff=True, is_active=True).exclude(email="")
                .order_by("email").values_list("email", flat=True))


# The fields that make a profile complete, with what the profile page calls each.
PROFILE_FIELDS = {"name": "a display name", "avatar": "an avatar (a picture or your initials)",
                  "time_zone": "your time zone", "email_digest": "the email digest preference"}


def profile_missing(*, user: User) -> list[str]:
    """Which profile fields are not chosen yet (empty: the profile is complete)."""
    missing = []
    if not user.name:
        missing.append("name")
    if not user.avatar_kind or (user.avatar_kind == User.AvatarKind.IMAGE and not user.avatar):
        missing.append("avatar")
    if not user.time_zone:
        missing.append("time_zone")
    if not user.email_digest:
        missing.append("email_digest")
    return missing


def memberships_of_team(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__email")


def membership_of(*, team: Team, user: User) -> Membership | None:
    return Membership.objects.filter(team=team, user=user).first()


def team_get_for(*, user: User, team_id: int) -> Team | None:
    """A team the user belongs to, or None: other teams are indistinguishable from none."""
    return teams_of_user(user=user).filter(pk=team_id).first()


def invitations_of_team(*, team: Team) -> QuerySet[Invitation]:
    return Invitation.objects.filter(team=team).select_related("invited_by", "accepted_by").order_by(
        "-created_at", "-id")


def invitation_of_team(*, team: Team, invitation_id: int) -> Invitation | None:
    return invitations_of_team(team=team).filter(pk=invitation_id).first()


def invitations_accepted_count(*, invited_by_id: int) -> int:
    """People who joined a team through this user's invitations (the Community Builder badge)."""
    return Invitation.objects.filter(invited_by_id=invited_by_id, accepted_at__isnull=False).count()


def users_share_a_team(*, user: User, other_id: int) -> bool:
    return user.pk == other_id or Membership.objects.filter(
        user_id=other_id, team__in=Team.objects.filter(memberships__user=user)).exists()
