"""Bad frames on the chat socket get an error frame; nothing reaches the database or a model."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from accounts.tests.factories import user_make
from chat.models import Message
from chat.seed import assistants_seed
from chat.tests.factories import conversation_make, socket_connect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("socket_tasks_reaped")]


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "hello\x1bworld"])
async def test_control_characters_in_a_message_are_an_error_frame(text):
    def world():
        assistants_seed()
        user = user_make()
        return user, conversation_make(user=user)

    user, conversation = await sync_to_async(world)()
    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
    assert connected

    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": text}))
    frame = json.loads(await communicator.receive_from(timeout=10))

    assert frame["type"] == "error" and frame["code"] == "invalid_text" and "control character" in frame["message"]
    assert not await sync_to_async(Message.objects.exists)()
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=10)) == {"type": "pong"}
    await communicator.disconnect()
