"""Onboarding's Celery tasks (queue `default`)."""

from __future__ import annotations

from celery import shared_task

from onboarding.services import models_online_broadcast as _broadcast


@shared_task(name="onboarding.tasks.models_online_broadcast", acks_late=False, ignore_result=True)
def models_online_broadcast() -> bool:
    """Beat, every 10 s: tell open welcome screens when the loaded models changed (a cheap Redis read
    otherwise). Running twice at once at worst sends the same figures twice."""
    return _broadcast()
