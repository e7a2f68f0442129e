"""Live frames on the notifications socket (real ASGI app, real Redis channel layer): badge toasts,
the tour's state, the welcome figures, and the models-online broadcast. Sent after commit only."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from accounts.tests.factories import user_make
from chat.services import message_assistant_finish, message_assistant_start
from chat.tests.factories import conversation_make, socket_connect
from common.redis_connection import redis_client
from onboarding.models import Event
from onboarding.services import event_record, models_online_broadcast, tour_start
from onboarding.services.live import MODELS_ONLINE_KEY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("socket_tasks_reaped")]


async def frames_until(communicator, event: str, timeout: float = 5) -> dict:
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        if frame.get("type") == "event" and frame["event"] == event:
            return frame["data"]


async def events(communicator, names: set[str], timeout: float = 5) -> dict[str, dict]:
    """The last frame of each of `names` (other events may come in between)."""
    seen: dict[str, dict] = {}
    while not names <= set(seen):
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        if frame.get("type") == "event":
            seen[frame["event"]] = frame["data"]
    return seen


async def test_a_badge_earned_is_toasted_live():
    user = await sync_to_async(user_make)()
    socket, connected, _ = await socket_connect("/ws/notifications/", user)
    assert connected

    def finish_a_reply() -> None:
        conversation = conversation_make(user=user)
        message = message_assistant_start(conversation=conversation, request_id="r-live", context={})
        message_assistant_finish(message_id=message.pk, text="Hi!", status="done")

    await sync_to_async(finish_a_reply)()

    frames = await events(socket, {"badge.awarded", "welcome.stats"})
    award = frames["badge.awarded"]
    assert award["slug"] == "first-chat" and award["name"] == "First Chat" and award["icon"] == "chat"
    assert frames["welcome.stats"] == {"chats_week": 1}
    await socket.disconnect()


async def test_tour_progress_is_pushed_to_every_open_page():
    user = await sync_to_async(user_make)()
    first, _, _ = await socket_connect("/ws/notifications/", user)
    second, _, _ = await socket_connect("/ws/notifications/", user)

    await sync_to_async(tour_start)(user=user)
    await sync_to_async(event_record)(user_id=user.pk, name=Event.CONVERSATION_STARTED)

    for socket in (first, second):
        assert (await frames_until(socket, "tour.state"))["current"] == "assistants"
        state = await frames_until(socket, "tour.state")
        assert state["current"] == "chat" and state["percent"] == 17
        await socket.disconnect()


async def test_models_online_are_broadcast_when_they_change():
    user = await sync_to_async(user_make)()
    socket, _, _ = await socket_connect("/ws/notifications/", user)
    await sync_to_async(redis_client().delete)(MODELS_ONLINE_KEY)

    assert await sync_to_async(models_online_broadcast)() is True
    figures = await frames_until(socket, "welcome.stats")
    assert set(figures) == {"models_online", "models_online_names"}
    assert await sync_to_async(models_online_broadcast)() is False  # unchanged: nothing sent
    await socket.disconnect()


async def test_nothing_is_pushed_for_a_rolled_back_event():
    from django.db import transaction

    user = await sync_to_async(user_make)()
    socket, _, _ = await socket_connect("/ws/notifications/", user)

    def award_then_roll_back() -> None:
        try:
            with transaction.atomic():
                event_record(user_id=user.pk, name=Event.S7_CHALLENGE_FINISHED)
                raise RuntimeError("the caller failed")
        except RuntimeError:
            pass

    await sync_to_async(award_then_roll_back)()

    assert await socket.receive_nothing(timeout=1)
    await socket.disconnect()
