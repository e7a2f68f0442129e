"""A conversation's title, written by the model after the first reply (chat.tasks.conversation_autotitle).

The first message already gave a provisional title (its first words). The model's call goes through
inference's face for the conversation's owner, metered as a system call: its tokens count, it takes no
request from the plan, and when it is refused or fails the title stays the first words. The page hears
of the new title on the conversation's channel group (chat.consumers.ChatConsumer.conversation_title).
"""

from __future__ import annotations

import logging
import re

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat.models import Conversation, Message
from chat.services import conversation_title_claim, conversation_title_set, title_from_first_words
from common.errors import ApplicationError
from inference.services import Caller, chat_complete

logger = logging.getLogger(__name__)

TITLE_MAX_WORDS = 6
TITLE_PROMPT = ("Write a title for this conversation: at most six words, plain text, no quotes, no punctuation at "
                "the end. Reply with the title only.")


def conversation_group(conversation_id: int) -> str:
    """The channel group of a conversation's open chat sockets."""
    return f"chat.conversation.{conversation_id}"


def title_clean(text: str) -> str:
    """The model's answer as a title: its first line, without a "Title:" label, quotes, markdown or a trailing
    full stop, at most six words."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^\s*(title\s*:\s*)", "", line, flags=re.IGNORECASE)
    line = line.strip().strip("\"'“”‘’*#`_ ").rstrip(".!?:;,")
    words = line.split()[:TITLE_MAX_WORDS]
    return " ".join(words)[:200]


def conversation_autotitle(*, conversation_id: int) -> str | None:
    """Title a conversation once, after its first reply; None if it is not due (already titled, renamed)."""
    if not conversation_title_claim(conversation_id=conversation_id):
        return None
    conversation = Conversation.objects.select_related("assistant", "user").get(pk=conversation_id)
    first = (Message.objects.filter(conversation=conversation, role=Message.Role.USER)
             .order_by("created_at", "id").first())
    reply = (Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT,
                                    status=Message.Status.DONE).order_by("created_at", "id").first())
    if first is None:
        conversation_title_set(conversation_id=conversation_id, title=conversation.title or "", source="fallback")
        return None
    title, source = "", "model"
    try:
        result = chat_complete(
            caller=Caller(user=conversation.user), model=conversation.model or conversation.assistant.route_alias,
            metering="title", max_tokens=24, temperature=0.2, shrink_to_fit=True, messages=[
                {"role": "system", "content": TITLE_PROMPT},
                {"role": "user", "content": f"User: {first.text[:1500]}\n\nAssistant: "
                                            f"{(reply.text if reply else '')[:1500]}"},
            ])
        title = title_clean(result["text"])
    except ApplicationError as exc:
        logger.info("chat title: conversation %s keeps its first words: %s", conversation_id, exc.message)
    if not title:
        title, source = title_from_first_words(first.text), "fallback"
    if conversation_title_set(conversation_id=conversation_id, title=title, source=source):
        async_to_sync(get_channel_layer().group_send)(conversation_group(conversation_id), {
            "type": "conversation.title", "title": title, "source": source})
        return title
    return None
