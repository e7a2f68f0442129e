from __future__ import annotations

from onboarding.models import Journey
from onboarding.services import journey_lock


def journey_of(user) -> Journey:
    """The user's journey as stored now."""
    return Journey.objects.select_related("current_step").get(pk=user.pk)


def journey_ensure(user) -> Journey:
    from django.db import transaction

    with transaction.atomic():
        return journey_lock(user_id=user.pk)
