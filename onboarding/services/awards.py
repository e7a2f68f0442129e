"""Writes for awards the user has seen."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import User
from onboarding.models import Award


def awards_mark_seen(*, user: User, award_ids: list[int]) -> int:
    """Mark the user's own awards as toasted; ids of other users' awards change nothing."""
    return Award.objects.filter(user=user, pk__in=award_ids, seen_at__isnull=True).update(seen_at=timezone.now())
