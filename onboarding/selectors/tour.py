"""Reads for the tour: the steps in play and one user's progress through them."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import User
from onboarding.models import Award, Badge, Journey, TourStep


def tour_steps_active() -> list[TourStep]:
    """Enabled steps, in order, leaving out those whose page comes from a setting that is empty."""
    return [step for step in TourStep.objects.filter(enabled=True).order_by("order", "id") if step.url]


def journey_of_user(*, user: User) -> Journey | None:
    return Journey.objects.filter(user=user).select_related("current_step").first()


def tour_percent(*, journey: Journey | None, steps: list[TourStep]) -> int:
    if journey is None or not steps:
        return 0
    done = set(journey.completed_steps) & {step.slug for step in steps}
    return round(100 * len(done) / len(steps))


def tour_state(*, user: User) -> dict[str, object]:
    """Everything the page needs to draw the tour, its ring and its card, as JSON-ready data."""
    journey = journey_of_user(user=user)
    steps = tour_steps_active()
    completed = set(journey.completed_steps) if journey else set()
    current = journey.current_step if journey else None
    state = journey.tour_state if journey else Journey.State.NEW
    if current is not None and current.slug not in {step.slug for step in steps}:
        current = None  # staff disabled it meanwhile; the next operation moves on
    position = next((index for index, step in enumerate(steps, 1) if current and step.pk == current.pk), None)
    return {
        "state": state,
        "percent": tour_percent(journey=journey, steps=steps),
        "run": journey.run if journey else 0,
        "current": current.slug if current else None,
        "position": position,
        "total": len(steps),
        "finished_at": journey.run_finished_at.isoformat() if journey and journey.run_finished_at else None,
        "steps": [
            {"slug": step.slug, "title": step.title, "text": step.text, "url": step.url,
             "element": step.target_element, "action": step.action, "done": step.slug in completed}
            for step in steps
        ],
    }


def badges_with_awards(*, user: User) -> list[dict[str, object]]:
    """Every badge, in order, with the user's award of it or None."""
    awards = {award.badge_id: award for award in Award.objects.filter(user=user)}
    return [{"badge": badge, "award": awards.get(badge.pk)} for badge in Badge.objects.order_by("order", "id")]


def awards_of_user(*, user: User) -> QuerySet[Award]:
    return Award.objects.filter(user=user).select_related("badge").order_by("-awarded_at", "-id")


def award_toast(award: Award) -> dict[str, object]:
    """What a badge toast shows (the page's initial state, the live push and the catch-up after a connect)."""
    return {"id": award.pk, "slug": award.badge.slug, "name": award.badge.name,
            "description": award.badge.description, "icon": award.badge.icon}


def awards_unseen(*, user: User) -> QuerySet[Award]:
    """Awards whose toast the user has not seen yet (earned while no page of theirs was open)."""
    return awards_of_user(user=user).filter(seen_at__isnull=True)
