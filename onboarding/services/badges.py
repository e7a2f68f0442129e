"""Badges: the rules that decide, and the one insert that awards.

An award is exactly once because of the unique (user, badge) constraint, not because of a check
before the insert: two events racing both pass any check, and the second insert conflicts (it
waits for the first transaction, then fails) and awards nothing. Only the winner sends a toast.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from onboarding.models import Award, Badge, Event, Journey
from onboarding.services.live import award_push

Rule = Badge.Rule


@transaction.atomic
def badge_award(*, user_id: int, rule: str, event: str, data: dict | None = None) -> Award | None:
    """Award the badge with `rule` to the user; None if they already have it or no such badge exists."""
    badge = Badge.objects.filter(rule=rule).first()
    if badge is None:
        return None
    try:
        with transaction.atomic():
            award = Award.objects.create(user_id=user_id, badge=badge, event=event, event_data=data or {})
    except IntegrityError:
        return None
    award_push(award=award)
    return award


def _has(user_id: int, rule: str) -> bool:
    return Award.objects.filter(user_id=user_id, badge__rule=rule).exists()


def _threshold(rule: str) -> int | None:
    return Badge.objects.filter(rule=rule).values_list("threshold", flat=True).first()


def badges_for_event(*, journey: Journey, event: str, data: dict) -> list[Award]:
    """Check the rules `event` can satisfy and award what is earned (journey locked by the caller)."""
    user_id, candidates = journey.user_id, []
    if event == Event.REPLY_COMPLETED:
        candidates.append(Rule.FIRST_CHAT)
    if event in (Event.DOCUMENT_READY, Event.CITATION_OPENED):
        candidates.append(Rule.KNOWLEDGE_EXPLORER)
    if event == Event.S7_CHALLENGE_FINISHED:
        candidates.append(Rule.S7_CHALLENGER)
    if event == Event.INVITEE_JOINED:
        candidates.append(Rule.COMMUNITY_BUILDER)
    if event in (Event.REPLY_COMPLETED, Event.DOCUMENT_ADDED, Event.CITATION_OPENED, Event.API_KEY_CREATED,
                 Event.API_KEY_USED):
        candidates.append(Rule.POWER_USER)

    awards = []
    for rule in candidates:
        if _has(user_id, rule):
            continue
        threshold = _threshold(rule)
        if threshold is None or not _earned(rule, journey=journey, event=event, data=data, threshold=threshold):
            continue
        award = badge_award(user_id=user_id, rule=rule, event=event, data=data)
        if award is not None:
            awards.append(award)
    return awards


def _earned(rule: str, *, journey: Journey, event: str, data: dict, threshold: int) -> bool:
    user_id = journey.user_id
    if rule == Rule.FIRST_CHAT:
        if threshold <= 1:
            return True
        from chat.selectors import replies_completed_count

        return replies_completed_count(user_id=user_id) >= threshold
    if rule == Rule.KNOWLEDGE_EXPLORER:
        if event == Event.CITATION_OPENED:
            return True
        from knowledge.selectors import documents_ready_count_added_by

        return documents_ready_count_added_by(user_id=user_id) >= threshold
    if rule == Rule.S7_CHALLENGER:
        # The evaluation app reports how many challenges the user has finished (1 if it doesn't say).
        return int(data.get("finished", 1)) >= threshold
    if rule == Rule.COMMUNITY_BUILDER:
        from accounts.selectors import invitations_accepted_count

        return invitations_accepted_count(invited_by_id=user_id) >= threshold
    if rule == Rule.POWER_USER:
        since = timezone.now() - timedelta(days=threshold)
        uses = (journey.last_chat_at, journey.last_voice_at, journey.last_knowledge_at, journey.last_api_key_at)
        return all(used is not None and used >= since for used in uses)
    return False
