"""Per-user live events over `ws/notifications/`: other apps push progress and state changes."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

# Every notifications socket also joins this group, for facts that are the same for everyone
# (the models online now, shown on the welcome screen).
BROADCAST_GROUP = "broadcast"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def user_notify(*, user_id: int, event: str, data: dict[str, object]) -> None:
    """Send `{"type": "event", "event": ..., "data": ...}` to every open socket of the user."""
    async_to_sync(get_channel_layer().group_send)(
        user_group(user_id), {"type": "user.event", "event": event, "data": data}
    )


def broadcast_notify(*, event: str, data: dict[str, object]) -> None:
    """The same frame as `user_notify`, to every open notifications socket."""
    async_to_sync(get_channel_layer().group_send)(
        BROADCAST_GROUP, {"type": "user.event", "event": event, "data": data}
    )
