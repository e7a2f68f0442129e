"""Writes for assistants, conversations and messages."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts.models import User
from chat.models import Assistant, Conversation, Message
from common.errors import ApplicationError

MAX_MESSAGE_CHARS = 8000


@transaction.atomic
def assistant_create(*, owner: User, name: str, system_prompt: str, description: str = "", emoji: str = "💬",
                     route_alias: str = "chat-default", temperature: float = 0.5, max_tokens: int = 512) -> Assistant:
    name = name.strip()
    if not name or not system_prompt.strip():
        raise ApplicationError("An assistant needs a name and instructions.", code="invalid")
    slug = f"{slugify(name)[:80] or 'assistant'}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    return Assistant.objects.create(
        owner=owner, name=name[:100], slug=slug, system_prompt=system_prompt.strip(), description=description[:300],
        emoji=emoji[:8] or "💬", route_alias=route_alias, temperature=max(0.0, min(temperature, 2.0)),
        max_tokens=max(16, min(max_tokens, 4096)),
    )


@transaction.atomic
def conversation_create(*, user: User, assistant: Assistant) -> Conversation:
    if assistant.owner_id not in (None, user.pk) or not assistant.is_active:
        raise ApplicationError("That assistant does not exist.", code="not_found", status=404)
    return Conversation.objects.create(user=user, assistant=assistant)


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join(title.split())[:200]
    if not title:
        raise ApplicationError("A title cannot be empty.", code="invalid")
    Conversation.objects.filter(pk=conversation.pk).update(title=title, updated_at=timezone.now())
    conversation.title = title
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def conversation_set_knowledge(*, conversation: Conversation, enabled: bool) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(use_knowledge=enabled)
    conversation.use_knowledge = enabled


def conversation_set_model(*, conversation: Conversation, model: str) -> None:
    """Remember the model or route picked for this conversation ("" = the assistant's). Whether the user may
    use it is checked by inference when a turn asks for it; a refused pick is never stored."""
    model = model.strip()[:100]
    if model == conversation.assistant.route_alias:
        model = ""
    Conversation.objects.filter(pk=conversation.pk).update(model=model)
    conversation.model = model


@transaction.atomic
def message_user_create(*, conversation: Conversation, text: str, via: str = "text") -> Message:
    """The user's turn, stored before anything is generated, so it is never lost."""
    text = text.strip()
    if not text:
        raise ApplicationError("The message is empty.", code="empty_message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApplicationError(f"The message is {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}.",
                               code="message_too_long")
    message = Message.objects.create(conversation=conversation, role=Message.Role.USER, text=text, via=via)
    updates = {"updated_at": timezone.now()}
    if not conversation.title:
        updates["title"] = text[:60] + ("…" if len(text) > 60 else "")
        conversation.title = updates["title"]
    Conversation.objects.filter(pk=conversation.pk).update(**updates)
    return message


def message_assistant_start(*, conversation: Conversation, request_id: str, context: dict, via: str = "text",
                            citations: list | None = None) -> Message:
    return Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT,
                                  status=Message.Status.STREAMING, request_id=request_id, context=context, via=via,
                                  citations=citations or [])


def message_assistant_progress(*, message_id: int, text: str) -> None:
    """Keep the partial reply in the row while it streams, so a crashed web process loses little."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(text=text)


def message_assistant_finish(
    *, message_id: int, text: str, status: str, model_name: str = "", model_note: str = "",
    usage: dict | None = None, timings: dict | None = None, error: str = "",
) -> bool:
    """Settle a streaming reply once; a second settle (a retry, a race with cleanup) changes nothing."""
    return bool(Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        text=text, status=status, model_name=model_name, model_note=model_note[:300], usage=usage or {},
        timings=timings or {}, error=error[:2000],
    ))


# A reply whose turn lost its lease this long ago is orphaned (chat.turns.LEASE_TTL_SECONDS).
ORPHAN_MIN_AGE_SECONDS = 10
ORPHAN_WAIT_SECONDS = 5.0


def messages_finish_orphaned(*, min_age_seconds: int = ORPHAN_MIN_AGE_SECONDS,
                             wait_seconds: float = ORPHAN_WAIT_SECONDS) -> int:
    """Finish replies whose web process died mid-stream, with everything the worker generated.

    A streaming turn holds a lease in Redis; once it lapses, nobody will read the rest of the
    stream. The worker stores each chat request's outcome, so: stop the job if it still runs,
    wait briefly for its outcome, and settle the message with the full text, `done` if the model
    finished, `interrupted` if it was stopped. With no outcome (the worker died too), the last
    partial text saved by the turn is kept, interrupted. Runs from beat every 10 seconds.
    """
    import time

    from chat.turns import LEASE_PREFIX
    from common.redis_connection import redis_client
    from inference.services import job_cancel, job_outcome

    cutoff = timezone.now() - timezone.timedelta(seconds=min_age_seconds)
    candidates = list(Message.objects.filter(status=Message.Status.STREAMING, created_at__lt=cutoff)
                      .order_by("created_at", "id")[:200])
    client, finished = redis_client(), 0
    orphans = [m for m in candidates if not client.exists(LEASE_PREFIX + str(m.pk))]
    for message in orphans:
        if message.request_id and job_outcome(request_id=message.request_id) is None:
            job_cancel(request_id=message.request_id)
    deadline = time.monotonic() + wait_seconds
    for message in orphans:
        outcome = None
        while message.request_id:
            outcome = job_outcome(request_id=message.request_id)
            if outcome is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if outcome is not None:
            complete = outcome["status"] == "done" and outcome.get("finish_reason") in ("stop", "length")
            status = Message.Status.DONE if complete else Message.Status.INTERRUPTED
            text = outcome.get("text", "")
            error = "" if complete else "The server restarted while this reply was being written; this is what was " \
                                        "written before it stopped."
            model_name, usage = outcome.get("spec", ""), outcome.get("usage", {})
        else:
            status, text, model_name, usage = Message.Status.INTERRUPTED, message.text, message.model_name, {}
            error = "The server stopped while this reply was being written."
        if not text:
            status = Message.Status.FAILED
        finished += message_assistant_finish(message_id=message.pk, text=text, status=status, model_name=model_name,
                                             usage=usage, timings=message.timings, error=error)
    return finished


def messages_interrupt_stale(*, older_than_seconds: int = 600) -> int:
    """Replies still 'streaming' long after their last write belong to a process that died."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    return Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff).update(
        status=Message.Status.INTERRUPTED, error="The server stopped while this reply was being written.")
