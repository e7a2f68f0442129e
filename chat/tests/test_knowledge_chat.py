"""Knowledge in chat: citations come only from collections the user may read (leak test through
the real chat consumer), and the prompt carries the numbered sources."""

from __future__ import annotations

import json
import random

import pytest
from asgiref.sync import sync_to_async

from billing.tests.factories import free_plan_set
from chat.tests.factories import socket_connect
from knowledge.models import Document
from knowledge.tests.world import INJECTION, world_build

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("socket_tasks_reaped")]

TURNS = int(__import__("os").environ.get("PARLEY_LEAK_TURNS", "200"))
VOCABULARY = ["loop", "exception", "class", "function", "import", "return", "with", "assert", "lambda",
              "statement", "iterate", "module", "delete", "pass", "while", "condition"]


def _retrieval_only_conversation(user):
    """Retrieval is under test, not the answer: this assistant's model cannot load, so each turn
    retrieves, sends its citations in `start`, and ends at once with an error frame."""
    from chat.services import assistant_create, conversation_create
    from inference.tests.factories import broken_chat_route

    broken_chat_route()
    assistant = assistant_create(owner=user, name="Librarian", system_prompt="Answer from the sources.",
                                 route_alias="broken-chat", max_tokens=16)
    return conversation_create(user=user, assistant=assistant)


async def _until(communicator, kinds: set[str]) -> dict:
    while True:
        frame = json.loads(await communicator.receive_from(timeout=60))
        if frame["type"] in kinds:
            return frame


async def test_200_chat_turns_with_knowledge_never_cite_what_the_user_may_not_read(celery_worker, bundled_models):
    # 200 turns in a few minutes: far past the free plan's requests per minute, which test_plans covers.
    await sync_to_async(free_plan_set)(requests_per_minute=100_000, tokens_per_day=100_000_000)
    world = await sync_to_async(world_build)()
    users = [world.owner, world.member, world.outsider]
    readable_docs = {
        user.pk: await sync_to_async(lambda ids: set(Document.objects.filter(collection_id__in=ids)
                                                     .values_list("id", flat=True)))(world.readable[user.pk])
        for user in users
    }
    sockets = {}
    for user in users:
        conversation = await sync_to_async(_retrieval_only_conversation)(user)
        communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
        assert connected
        sockets[user.pk] = communicator
    rng = random.Random(11)
    cited = {user.pk: set() for user in users}
    for index in range(TURNS):
        user = users[index % 3]
        query = " ".join(rng.sample(VOCABULARY, rng.randint(1, 4)))
        if index % 10 == 0:
            query = INJECTION.format(private=world.private.pk, team=world.team.pk)
        communicator = sockets[user.pk]
        await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": query,
                                                         "use_knowledge": True}))
        start = await _until(communicator, {"start", "error"})
        assert start["type"] == "start", start
        documents = {citation["document_id"] for citation in start["citations"]}
        assert documents <= readable_docs[user.pk], (user.email, query, documents - readable_docs[user.pk])
        cited[user.pk] |= documents
        await _until(communicator, {"done", "error"})
    for user in users:
        assert cited[user.pk], f"{user.email} never got a citation, so the test proved nothing"
        await sockets[user.pk].disconnect()


async def test_a_conversation_answers_from_the_collections_picked_for_it(celery_worker, bundled_models):
    from chat.models import Conversation

    await sync_to_async(free_plan_set)(requests_per_minute=100_000, tokens_per_day=100_000_000)
    world = await sync_to_async(world_build)()
    owner = world.owner
    conversation = await sync_to_async(_retrieval_only_conversation)(owner)
    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", owner)
    assert connected
    collection_of = await sync_to_async(lambda: dict(Document.objects.values_list("id", "collection_id")))()

    async def cited_collections(**choice) -> set[int]:
        await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "loop exception class",
                                                         "use_knowledge": True, **choice}))
        start = await _until(communicator, {"start", "error"})
        assert start["type"] == "start", start
        await _until(communicator, {"done", "error"})
        return {collection_of[citation["document_id"]] for citation in start["citations"]}

    everything = await cited_collections(knowledge_collections="all")
    assert len(everything) > 1 and everything <= world.readable[owner.pk]
    picked = sorted(everything)[0]
    assert await cited_collections(knowledge_collections=[picked]) == {picked}
    # The choice stays with the conversation: the next message without one uses it too.
    assert await cited_collections() == {picked}
    stored = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert stored.use_knowledge and stored.knowledge_collections == [picked]
    # A collection the owner may not read gives nothing from it; a malformed choice is an error frame.
    unreadable = next(iter(world.readable[world.outsider.pk] - world.readable[owner.pk]))
    assert await cited_collections(knowledge_collections=[unreadable]) == set()
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "loop",
                                                     "knowledge_collections": ["²"]}))
    error = await _until(communicator, {"error", "start"})
    assert error["type"] == "error" and error["code"] == "invalid_knowledge_collections", error
    await communicator.disconnect()
