"""Reads for users, teams and memberships."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.apikeys import KEY_PREFIX, apikey_hash
from accounts.models import ApiKey, Membership, Team, User


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("-team__is_personal", "team__name")


def teams_of_user(*, user: User) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("-is_personal", "name")


def team_ids_of_user(*, user: User) -> list[int]:
    """The ids of the teams the user belongs to (for access rules that name teams)."""
    return list(Membership.objects.filter(user=user).order_by("team_id").values_list("team_id", flat=True))


def apikeys_of_user(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at", "-id")


def apikey_authenticate(*, key: str) -> ApiKey | None:
    """The active key matching `key`, with its user, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    return (
        ApiKey.objects.select_related("user")
        .filter(key_hash=apikey_hash(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
