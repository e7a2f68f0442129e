"""Reads for the welcome screen: the live figures and the suggested prompts."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from accounts.models import User

# Three prompts that show what Parley does without any setup: a plain question, a rewrite, and
# one that uses the user's documents once they have some.
SUGGESTED_PROMPTS = [
    ("Explain it simply", "Explain how a heat pump works in three short paragraphs."),
    ("Polish my writing", "Rewrite this so it sounds friendly and clear: we moved the meeting to Thursday, "
                          "bring the numbers."),
    ("Plan something", "Make a checklist for onboarding a new colleague in their first week."),
]


def user_zone(user: User) -> ZoneInfo:
    try:
        return ZoneInfo(user.time_zone) if user.time_zone else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def week_start(*, user: User, now: datetime | None = None) -> datetime:
    """Monday 00:00 of the current week in the user's time zone (UTC if they have not set one)."""
    local = (now or timezone.now()).astimezone(user_zone(user))
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday


def stats_chats(*, user: User) -> dict[str, int]:
    from chat.selectors import conversations_active_since

    return {"chats_week": conversations_active_since(user=user, since=week_start(user=user))}


def stats_documents(*, user: User) -> dict[str, int]:
    from knowledge.selectors import documents_totals_for_user

    return documents_totals_for_user(user=user)


def stats_assistants(*, user: User) -> dict[str, int]:
    from chat.selectors import assistants_for_user

    return {"assistants": assistants_for_user(user=user).count()}


def stats_models() -> dict[str, object]:
    from inference.selectors import models_online

    names = models_online()
    return {"models_online": len(names), "models_online_names": names}


def welcome_stats(*, user: User) -> dict[str, object]:
    """Assistants available, documents and passages, models online now, chats this week."""
    return {**stats_assistants(user=user), **stats_documents(user=user), **stats_models(), **stats_chats(user=user)}
