"""Live updates over `ws/notifications/`: the tour's state, badge toasts and the welcome figures.

Everything is sent after the transaction that caused it commits, so a rolled-back event never
shows a toast. A failed send is logged and dropped: the page reads the same facts on its next
load (unseen awards are toasted then, see `awards_unseen`).
"""

from __future__ import annotations

import json
import logging

from django.db import transaction

from common.notifications import broadcast_notify, user_notify
from common.redis_connection import redis_client
from onboarding.models import Award

logger = logging.getLogger(__name__)

MODELS_ONLINE_KEY = "parley:onboarding:models-online"


def _send(user_id: int, event: str, build) -> None:
    def send() -> None:
        try:
            user_notify(user_id=user_id, event=event, data=build())
        except Exception:
            logger.warning("could not push %s to user %s", event, user_id, exc_info=True)

    transaction.on_commit(send)


def tour_state_push(*, user_id: int) -> None:
    from accounts.models import User
    from onboarding.selectors import tour_state

    _send(user_id, "tour.state", lambda: tour_state(user=User(pk=user_id)))


def award_push(*, award: Award) -> None:
    from onboarding.selectors import award_toast

    _send(award.user_id, "badge.awarded", lambda: award_toast(award))


def stats_push(*, user_id: int, parts: tuple[str, ...]) -> None:
    """Send the welcome figures that changed (`chats`, `documents`); others stay as they are."""
    from accounts.selectors import user_get
    from onboarding.selectors import welcome

    def build() -> dict[str, object]:
        user = user_get(user_id=user_id)
        figures: dict[str, object] = {}
        if user is not None:
            for part in parts:
                figures.update(getattr(welcome, f"stats_{part}")(user=user))
        return figures

    _send(user_id, "welcome.stats", build)


def models_online_broadcast() -> bool:
    """Tell every open page when the set of loaded models changed; True if it did."""
    from onboarding.selectors.welcome import stats_models

    figures = stats_models()
    encoded = json.dumps(figures, sort_keys=True)
    client = redis_client()
    previous = client.get(MODELS_ONLINE_KEY)
    if (previous.decode() if isinstance(previous, bytes) else previous) == encoded:
        return False
    client.set(MODELS_ONLINE_KEY, encoded, ex=3600)
    broadcast_notify(event="welcome.stats", data=figures)
    return True
