"""Regenerate, edit and branch navigation, the model's title and memory summaries, through the real ASGI
stack and a real gpu worker (the bundled small models)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.tests.factories import user_make
from chat.models import Conversation, Message
from chat.services import (
    assistant_create,
    conversation_create,
    message_assistant_finish,
    message_assistant_start,
    message_user_create,
)
from chat.tests.factories import conversation_make, socket_connect
from inference.models import UsageRecord

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("socket_tasks_reaped")]


@pytest.fixture
def chat(celery_worker, bundled_models):
    """A conversation on the tiny model with short replies: these tests are about the turns, not the answers."""
    user = user_make()
    assistant = assistant_create(owner=user, name="Brief", system_prompt="Answer in one short sentence.",
                                 route_alias="smollm2-135m", max_tokens=48)
    return user, conversation_create(user=user, assistant=assistant)


async def _open(conversation, user):
    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
    assert connected
    return communicator


async def _until(communicator, kinds: set[str], timeout: float = 120) -> list[dict]:
    frames = []
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        frames.append(frame)
        if frame["type"] in kinds:
            return frames


async def _turn(communicator, frame: dict) -> list[dict]:
    await communicator.send_to(text_data=json.dumps(frame))
    frames = await _until(communicator, {"done", "error"})
    assert frames[-1]["type"] == "done", frames[-1]
    return frames


def _start(frames: list[dict]) -> dict:
    return next(f for f in frames if f["type"] == "start")


async def test_regenerate_keeps_both_replies_and_the_next_turn_follows_the_chosen_one(chat):
    user, conversation = chat
    communicator = await _open(conversation, user)
    first = _start(await _turn(communicator, {"type": "user_message", "text": "Name a colour."}))

    second = _start(await _turn(communicator, {"type": "regenerate", "message_id": first["message_id"]}))

    assert second["alternatives"] == {"index": 2, "count": 2, "previous_id": first["message_id"], "next_id": None}
    assert second["parent_id"] == first["parent_id"] == first["user_message"]["id"]
    assert await sync_to_async(Message.objects.filter(role="user").count)() == 1

    await communicator.send_to(text_data=json.dumps({"type": "select", "message_id": first["message_id"]}))
    path = (await _until(communicator, {"path"}))[-1]
    assert [m["id"] for m in path["messages"]] == [first["parent_id"], first["message_id"]]
    assert path["messages"][1]["alternatives"]["index"] == 1 and path["messages"][1]["alternatives"]["count"] == 2

    third = _start(await _turn(communicator, {"type": "user_message", "text": "Another one."}))
    follows = await sync_to_async(Message.objects.get)(pk=third["parent_id"])
    assert follows.parent_id == first["message_id"]  # the chosen alternative, not the newest reply
    await communicator.disconnect()


async def test_an_edit_branches_and_history_keeps_both(chat):
    user, conversation = chat
    communicator = await _open(conversation, user)
    first = _start(await _turn(communicator, {"type": "user_message", "text": "Say hi."}))

    edited = _start(await _turn(communicator, {"type": "edit", "message_id": first["parent_id"],
                                               "text": "Say hello."}))

    assert edited["user_message"]["text"] == "Say hello."
    assert edited["user_message"]["alternatives"]["index"] == 2
    assert edited["user_message"]["alternatives"]["count"] == 2
    users = await sync_to_async(list)(Message.objects.filter(role="user").order_by("id").values("text", "parent_id"))
    assert users == [{"text": "Say hi.", "parent_id": None}, {"text": "Say hello.", "parent_id": None}]
    await communicator.send_to(text_data=json.dumps({"type": "path"}))
    path = (await _until(communicator, {"path"}))[-1]
    assert [m["text"] for m in path["messages"]][0] == "Say hello." and len(path["messages"]) == 2
    await communicator.disconnect()


async def test_bad_regenerate_and_edit_frames_get_error_frames(chat):
    user, conversation = chat
    other_user = await sync_to_async(user_make)()
    other = await sync_to_async(conversation_make)(user=other_user)
    theirs = await sync_to_async(message_user_create)(conversation=other, text="Private.")
    communicator = await _open(conversation, user)
    mine = _start(await _turn(communicator, {"type": "user_message", "text": "Say OK."}))

    async def error_for(frame: dict) -> dict:
        await communicator.send_to(text_data=json.dumps(frame))
        reply = (await _until(communicator, {"error", "start"}, timeout=30))[-1]
        assert reply["type"] == "error", reply
        return reply

    assert (await error_for({"type": "regenerate", "message_id": theirs.pk}))["code"] == "message_not_found"
    assert (await error_for({"type": "select", "message_id": theirs.pk}))["code"] == "message_not_found"
    assert (await error_for({"type": "regenerate", "message_id": "12"}))["code"] == "invalid_message_id"
    assert (await error_for({"type": "regenerate"}))["code"] == "invalid_message_id"
    assert (await error_for({"type": "edit", "message_id": mine["parent_id"], "text": "  "}))["code"] == \
        "empty_message"
    assert (await error_for({"type": "edit", "message_id": mine["message_id"], "text": "x"}))["code"] == \
        "not_editable"

    # Frames are handled in order: the turn has begun when the regenerate arrives.
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "Write a long story."}))
    await communicator.send_to(text_data=json.dumps({"type": "regenerate", "message_id": mine["message_id"]}))
    frames = await _until(communicator, {"error"}, timeout=30)
    assert frames[-1]["code"] == "busy"
    await _until(communicator, {"done"})
    assert await sync_to_async(Message.objects.filter(conversation=other).count)() == 1
    await communicator.disconnect()


async def test_the_model_titles_the_conversation_after_the_first_reply_and_the_page_hears_it(chat):
    user, conversation = chat
    communicator = await _open(conversation, user)
    frames = await _turn(communicator, {"type": "user_message", "text": "How do I reset a forgotten password?"})
    provisional = [f for f in frames if f["type"] == "title"]
    assert provisional and provisional[0]["source"] == "first_words"

    titled = (await _until(communicator, {"title"}, timeout=120))[-1]

    stored = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert titled["title"] == stored.title and stored.title_source in ("model", "fallback")
    assert 0 < len(stored.title.split()) <= 6
    if stored.title_source == "model":  # metered for the user, as a system call: tokens, not a request
        assert await sync_to_async(UsageRecord.objects.filter(user=user, task="chat").count)() == 2
    await communicator.disconnect()


def _history(conversation, turns: int) -> None:
    for i in range(turns):
        message_user_create(conversation=conversation, text=f"Fact {i}: the lighthouse keeper number {i} is "
                                                            f"called Keeper{i} and likes the colour {i}. " * 3)
        reply = message_assistant_start(conversation=conversation, request_id=f"seed-{conversation.pk}-{i}",
                                        context={}, parent=Message.objects.filter(role="user").last())
        message_assistant_finish(message_id=reply.pk, text=f"Noted: Keeper{i} likes colour {i}. " * 4,
                                 status=Message.Status.DONE)


# About 105 tokens a seeded turn: ten of them overflow 800, a fresh window keeps half the budget, and the
# summary (at most 200 tokens) leaves room for the next turns to reuse it.
@override_settings(PARLEY_CHAT_CONTEXT_TOKENS=800)
async def test_older_turns_are_summarized_within_the_budget_and_the_reply_records_which(chat):
    user, conversation = chat
    await sync_to_async(_history)(conversation, 10)
    communicator = await _open(conversation, user)

    frames = await _turn(communicator, {"type": "user_message", "text": "Who is Keeper0?"})

    memory = _start(frames)["memory"]
    assert memory and memory["summarized"] > 0 and memory["summary"]
    reply = await sync_to_async(Message.objects.get)(pk=_start(frames)["message_id"])
    summarized, dropped = reply.context["summarized_ids"], reply.context["dropped_ids"]
    earlier = await sync_to_async(list)(Message.objects.filter(conversation=conversation, pk__lt=reply.pk - 1)
                                        .values_list("pk", flat=True))
    assert set(summarized) | set(dropped) <= set(earlier) and not set(summarized) & set(dropped)
    assert reply.usage.get("summary", {}).get("total_tokens", 0) > 0  # the summary is the turn's own usage

    # The next turn reuses the summary while what follows it fits.
    again = _start(await _turn(communicator, {"type": "user_message", "text": "Thanks."}))
    second = await sync_to_async(Message.objects.get)(pk=again["message_id"])
    assert second.context["summarized_ids"] == summarized and second.context.get("summary_reused")
    await communicator.disconnect()
