"""Reads for users, teams and memberships."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Membership, Team, User


def memberships_of_user(*, user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("team").order_by("-team__is_personal", "team__name")


def teams_of_user(*, user: User) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user=user).order_by("-is_personal", "name")
