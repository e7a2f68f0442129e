"""Built-in tools in a chat reply: the model calls knowledge_search, the server runs it with the user's
permissions, the page sees the step, and the reply goes on from the result — through the real chat
consumer, a real gpu worker and the bundled Qwen2.5-Coder 0.5B (temperature 0)."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import sync_to_async

from billing.tests.factories import free_plan_set
from chat.tests.factories import socket_connect
from chat.turns import MAX_TOOL_STEPS
from common.redis_connection import redis_client
from knowledge.models import Document
from knowledge.tests.world import world_build

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("socket_tasks_reaped")]

QUESTION = ("Use the knowledge_search tool to search my documents for: while loop. "
            "Then tell me in one sentence what a while loop does.")


def _requests_since(user_id: int, since: float) -> int:
    """Requests counted against the user's per-minute limit in every minute from `since` to now."""
    minutes = range(int(since // 60), int(time.time() // 60) + 1)
    return sum(int(redis_client().get(f"parley:quota:user:{user_id}:rpm:m{m}") or 0) for m in minutes)


def _researcher(user):
    from chat.services import assistant_create, conversation_create

    assistant = assistant_create(owner=user, name="Researcher", route_alias="qwen2.5-coder-0.5b",
                                 system_prompt="You answer questions about the user's documents. Search them first.",
                                 tools=["knowledge_search"], temperature=0, max_tokens=60)
    return conversation_create(user=user, assistant=assistant)


async def test_a_reply_searches_the_users_documents_and_answers_from_them(celery_worker, bundled_models):
    # One request a minute: the reply's later steps are part of its request, so they must not be refused.
    await sync_to_async(free_plan_set)(requests_per_minute=1, tokens_per_day=10_000_000)
    world = await sync_to_async(world_build)()
    user = world.member  # reads the team's and the shared collection, not the owner's private one
    readable = await sync_to_async(lambda: set(Document.objects.filter(
        collection_id__in=world.readable[user.pk]).values_list("id", flat=True)))()
    conversation = await sync_to_async(_researcher)(user)
    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
    assert connected
    since = time.time()

    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": QUESTION}))
    frames = []
    while not frames or frames[-1]["type"] not in ("done", "error"):
        frames.append(json.loads(await communicator.receive_from(timeout=180)))
    await communicator.disconnect()

    assert frames[-1]["type"] == "done", frames[-1]
    steps = [frame for frame in frames if frame["type"] == "tool_step"]
    assert 1 <= len(steps) <= MAX_TOOL_STEPS, [frame["type"] for frame in frames]
    first = steps[0]
    assert first["name"] == "knowledge_search" and first["ok"]
    assert first["summary"].startswith("used knowledge_search (") and "passage" in first["summary"]
    assert "while" in json.dumps(first["arguments"]).lower()
    # The step is what the model got back: the user's own passages, never another's.
    assert "while" in first["result"].lower()
    delta_text = "".join(frame["text"] for frame in frames if frame["type"] == "delta")

    from chat.models import Message

    reply = await sync_to_async(Message.objects.get)(pk=frames[-1]["message_id"])
    assert reply.status == "done" and reply.text == delta_text
    # It answered from the result, in words (the 0.5B model echoed its call when shown Qwen's tool turns).
    assert "while" in reply.text.lower() and not reply.text.lstrip().startswith(("{", "`"))
    assert [step["summary"] for step in reply.tool_steps] == [step["summary"] for step in steps]
    found = {passage["document_id"] for step in reply.tool_steps for passage in step["data"].get("citations", [])}
    assert found and found <= readable
    # Every step's tokens are the reply's, and the turn is one request however many steps it took.
    assert reply.usage["total_tokens"] > reply.usage["completion_tokens"] > 0
    assert await sync_to_async(_requests_since)(user.pk, since) <= 1  # (a minute's counter may have expired)
