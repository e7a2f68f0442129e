"""Knowledge in chat: citations come only from collections the user may read (leak test through
the real chat consumer), and the prompt carries the numbered sources."""

from __future__ import annotations

import json
import random

import pytest
from asgiref.sync import sync_to_async

from chat.tests.factories import conversation_make, socket_connect
from knowledge.models import Document
from knowledge.tests.world import INJECTION, world_build

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VOCABULARY = ["loop", "exception", "class", "function", "import", "return", "with", "assert", "lambda",
              "statement", "iterate", "module", "delete", "pass", "while", "condition"]


async def _until(communicator, kinds: set[str]) -> dict:
    while True:
        frame = json.loads(await communicator.receive_from(timeout=60))
        if frame["type"] in kinds:
            return frame


async def test_200_chat_turns_with_knowledge_never_cite_what_the_user_may_not_read(celery_worker, bundled_models):
    world = await sync_to_async(world_build)()
    users = [world.owner, world.member, world.outsider]
    readable_docs = {
        user.pk: await sync_to_async(lambda ids: set(Document.objects.filter(collection_id__in=ids)
                                                     .values_list("id", flat=True)))(world.readable[user.pk])
        for user in users
    }
    sockets = {}
    for user in users:
        conversation = await sync_to_async(conversation_make)(user=user)
        communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
        assert connected
        sockets[user.pk] = communicator
    rng = random.Random(11)
    cited = {user.pk: set() for user in users}
    for index in range(200):
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
        # Only retrieval is under test: stop the reply instead of waiting for it.
        await communicator.send_to(text_data=json.dumps({"type": "stop"}))
        await _until(communicator, {"done", "error"})
    for user in users:
        assert cited[user.pk], f"{user.email} never got a citation, so the test proved nothing"
        await sockets[user.pk].disconnect()
