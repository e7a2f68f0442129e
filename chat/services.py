"""Writes for assistants, conversations and messages."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.text import slugify

from accounts.models import User
from chat.models import Assistant, Conversation, Message
from common.errors import ApplicationError
from onboarding.services import Event, event_record

MAX_MESSAGE_CHARS = 8000


DEFAULT_ROUTE = "chat-default"
MAX_ASSISTANT_COLLECTIONS = 20


def assistant_route_check(*, owner: User, route_alias: str) -> str:
    """The route or model, if the owner may use it for chat (the default is always accepted: whether the
    user may use it is checked again at every turn, as for any pick)."""
    from inference.selectors import models_usable, routes_usable
    from inference.services import Caller

    route_alias = (route_alias or "").strip() or DEFAULT_ROUTE
    if route_alias == DEFAULT_ROUTE:
        return route_alias
    caller = Caller(user=owner)
    usable = {route.alias for route in routes_usable(caller=caller, task="chat")} | \
        {spec.name for spec in models_usable(caller=caller, task="chat")}
    if route_alias not in usable:
        raise ApplicationError(f"“{route_alias[:100]}” is not a chat route or model you may use; pick one from the "
                               "list.", code="invalid_route")
    return route_alias


def assistant_collections_check(*, owner: User, collection_ids: object) -> list[int] | None:
    """The collection ids, each one the owner may read (a 400 naming the others), or None for none."""
    if collection_ids is None:
        return None
    try:
        ids = list(dict.fromkeys(int(collection_id) for collection_id in collection_ids))
    except (TypeError, ValueError):
        raise ApplicationError("Collections are given by their numeric ids.", code="invalid_collections")
    if not ids:
        return None
    if len(ids) > MAX_ASSISTANT_COLLECTIONS:
        raise ApplicationError(f"An assistant answers from at most {MAX_ASSISTANT_COLLECTIONS} collections.",
                               code="invalid_collections")
    from knowledge.selectors import collections_readable

    readable = set(collections_readable(user=owner).filter(id__in=ids).values_list("id", flat=True))
    missing = [collection_id for collection_id in ids if collection_id not in readable]
    if missing:
        # The same words for a collection that doesn't exist and one the owner may not read: ids don't leak.
        raise ApplicationError(f"No such collection: {', '.join(map(str, missing))}.", code="invalid_collections")
    return ids


@transaction.atomic
def assistant_create(*, owner: User, name: str, system_prompt: str, description: str = "", emoji: str = "💬",
                     route_alias: str = DEFAULT_ROUTE, temperature: float = 0.5, max_tokens: int = 512,
                     knowledge_collections: list[int] | None = None, tools: list[str] | None = None,
                     check_route: bool = False) -> Assistant:
    """A private assistant. `check_route`: refuse a route the owner may not use now (a person's pick in the
    form); code that sets up assistants for tests or benchmarks names routes that may not exist yet."""
    from chat.tools import tools_check

    name = name.strip()
    if not name or not system_prompt.strip():
        raise ApplicationError("An assistant needs a name and instructions.", code="invalid")
    if check_route:
        route_alias = assistant_route_check(owner=owner, route_alias=route_alias)
    collections = assistant_collections_check(owner=owner, collection_ids=knowledge_collections)
    tools = tools_check(tools)
    slug = f"{slugify(name)[:80] or 'assistant'}-{get_random_string(6, 'abcdefghijklmnopqrstuvwxyz0123456789')}"
    return Assistant.objects.create(
        owner=owner, name=name[:100], slug=slug, system_prompt=system_prompt.strip(), description=description[:300],
        emoji=emoji[:8] or "💬", route_alias=route_alias, temperature=max(0.0, min(temperature, 2.0)),
        max_tokens=max(16, min(max_tokens, 4096)), knowledge_collections=collections, tools=tools,
    )


@transaction.atomic
def assistant_update(*, user: User, assistant: Assistant, name: str, system_prompt: str, description: str = "",
                     emoji: str = "💬", route_alias: str = DEFAULT_ROUTE,
                     knowledge_collections: list[int] | None = None, tools: list[str] | None = None) -> Assistant:
    """Change one of the user's own assistants (staff ones are edited in admin). Conversations already
    started keep their collections; new ones take the new defaults."""
    from chat.tools import tools_check

    if assistant.owner_id != user.pk:
        raise ApplicationError("That assistant does not exist.", code="not_found", status=404)
    name = name.strip()
    if not name or not system_prompt.strip():
        raise ApplicationError("An assistant needs a name and instructions.", code="invalid")
    fields = {
        "name": name[:100], "system_prompt": system_prompt.strip(), "description": description[:300],
        "emoji": emoji[:8] or "💬",
        "route_alias": route_alias if route_alias == assistant.route_alias
        else assistant_route_check(owner=user, route_alias=route_alias),
        "knowledge_collections": assistant_collections_check(owner=user, collection_ids=knowledge_collections),
        "tools": tools_check(tools),
    }
    Assistant.objects.filter(pk=assistant.pk, owner=user).update(**fields, updated_at=timezone.now())
    for field, value in fields.items():
        setattr(assistant, field, value)
    return assistant


@transaction.atomic
def conversation_create(*, user: User, assistant: Assistant) -> Conversation:
    if assistant.owner_id not in (None, user.pk) or not assistant.is_active:
        raise ApplicationError("That assistant does not exist.", code="not_found", status=404)
    defaults = assistant.knowledge_collections
    conversation = Conversation.objects.create(user=user, assistant=assistant, use_knowledge=bool(defaults),
                                               knowledge_collections=list(defaults) if defaults else None)
    event_record(user_id=user.pk, name=Event.CONVERSATION_STARTED)
    return conversation


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    title = " ".join(title.split())[:200]
    if not title:
        raise ApplicationError("A title cannot be empty.", code="invalid")
    Conversation.objects.filter(pk=conversation.pk).update(title=title, title_source="user", updated_at=timezone.now())
    conversation.title, conversation.title_source = title, "user"
    return conversation


def conversation_title_claim(*, conversation_id: int) -> bool:
    """Claim the model's titling of a conversation: once, and never over a title the user chose."""
    return bool(Conversation.objects.filter(pk=conversation_id, title_source__in=("", "first_words"))
                .update(title_source="titling"))


def conversation_title_set(*, conversation_id: int, title: str, source: str) -> bool:
    """Store a generated title, unless the user renamed the conversation meanwhile (a guarded UPDATE)."""
    title = " ".join(title.split())[:200]
    if not title:
        return False
    return bool(Conversation.objects.filter(pk=conversation_id).exclude(title_source="user")
                .update(title=title, title_source=source))


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()


def conversation_set_knowledge(*, conversation: Conversation, enabled: bool,
                               collections: list[int] | None | object = ...) -> None:
    """Knowledge on or off for the conversation and, when given, which collections (None: all readable)."""
    fields = {"use_knowledge": enabled}
    if collections is not ...:
        fields["knowledge_collections"] = collections
    Conversation.objects.filter(pk=conversation.pk).update(**fields)
    for name, value in fields.items():
        setattr(conversation, name, value)


def conversation_set_model(*, conversation: Conversation, model: str) -> None:
    """Remember the model or route picked for this conversation ("" = the assistant's). Whether the user may
    use it is checked by inference when a turn asks for it; a refused pick is never stored."""
    model = model.strip()[:100]
    if model == conversation.assistant.route_alias:
        model = ""
    Conversation.objects.filter(pk=conversation.pk).update(model=model)
    conversation.model = model


TITLE_FIRST_WORDS = 6


def title_from_first_words(text: str) -> str:
    """A provisional title (and the fallback when the model cannot title): the message's first words."""
    words = text.split()
    title = " ".join(words[:TITLE_FIRST_WORDS])
    return title[:60] + ("…" if len(words) > TITLE_FIRST_WORDS or len(title) > 60 else "")


def message_text_check(text: str) -> str:
    text = text.strip()
    if not text:
        raise ApplicationError("The message is empty.", code="empty_message")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ApplicationError(f"The message is {len(text)} characters; the limit is {MAX_MESSAGE_CHARS}.",
                               code="message_too_long")
    return text


def _conversation_lock(conversation: Conversation) -> Conversation:
    """The conversation's row, locked, with its current leaf. A socket holds its Conversation for as long as it
    is open, so the leaf is always re-read here; the lock orders two tabs writing to one conversation."""
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    if locked.current_leaf_id is None:
        # Rows written before messages had parents (or written directly): a straight line in creation order.
        previous = None
        for message in Message.objects.filter(conversation=locked).order_by("created_at", "id"):
            if previous is not None and message.parent_id is None:
                Message.objects.filter(pk=message.pk).update(parent_id=previous)
            previous = message.pk
        locked.current_leaf_id = previous
    return locked


def _leaf_set(conversation: Conversation, message: Message, **updates) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=message, updated_at=timezone.now(), **updates)
    conversation.current_leaf_id = message.pk


@transaction.atomic
def message_user_create(*, conversation: Conversation, text: str, via: str = "text") -> Message:
    """The user's turn, stored before anything is generated, so it is never lost. It follows the current path."""
    text = message_text_check(text)
    locked = _conversation_lock(conversation)
    message = Message.objects.create(conversation=conversation, parent_id=locked.current_leaf_id,
                                     role=Message.Role.USER, text=text, via=via)
    updates = {}
    if not locked.title:
        updates = {"title": title_from_first_words(text), "title_source": "first_words"}
        conversation.title, conversation.title_source = updates["title"], updates["title_source"]
    _leaf_set(conversation, message, **updates)
    event_record(user_id=conversation.user_id, name=Event.MESSAGE_SENT, data={"via": via})
    return message


def _message_of(conversation: Conversation, message_id: object) -> Message:
    message = None
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        message = Message.objects.filter(conversation=conversation, pk=message_id).first()
    if message is None:
        # Another user's message is indistinguishable from none.
        raise ApplicationError("There is no such message in this conversation.", code="message_not_found",
                               status=404)
    return message


@transaction.atomic
def message_user_edit(*, conversation: Conversation, message_id: int, text: str, via: str = "text") -> Message:
    """An edited user message: a new branch beside the original (same parent); both stay in the history."""
    text = message_text_check(text)
    _conversation_lock(conversation)
    original = _message_of(conversation, message_id)
    if original.role != Message.Role.USER:
        raise ApplicationError("Only your own messages can be edited; regenerate a reply instead.",
                               code="not_editable")
    message = Message.objects.create(conversation=conversation, parent_id=original.parent_id,
                                     role=Message.Role.USER, text=text, via=via)
    _leaf_set(conversation, message)
    return message


@transaction.atomic
def message_reply_target(*, conversation: Conversation, message_id: int) -> Message:
    """The user message a regenerated reply answers: a reply's parent, or a user message left without a reply
    (a refused turn). A new reply to it is an alternative beside the earlier ones."""
    _conversation_lock(conversation)
    message = _message_of(conversation, message_id)
    if message.role == Message.Role.USER:
        return message
    if message.status == Message.Status.STREAMING:
        raise ApplicationError("That reply is still being written; stop it first.", code="busy", status=409)
    parent = Message.objects.filter(pk=message.parent_id, role=Message.Role.USER).first()
    if parent is None:
        raise ApplicationError("That reply has no message of yours to answer again.", code="not_regenerable")
    return parent


@transaction.atomic
def conversation_branch_select(*, conversation: Conversation, message_id: int) -> Message:
    """Show (and continue from) the branch through a message, down to the end the user last had on screen
    there (else the newest): the path's messages are touched, so coming back to a branch finds it as it was."""
    _conversation_lock(conversation)
    message = _message_of(conversation, message_id)
    rows = list(Message.objects.filter(conversation=conversation).values_list("pk", "parent_id", "updated_at"))
    children: dict[int | None, list[tuple]] = {}
    parents = {}
    for pk, parent_id, updated_at in rows:
        children.setdefault(parent_id, []).append((updated_at, pk))
        parents[pk] = parent_id
    leaf = message.pk
    while children.get(leaf):
        leaf = max(children[leaf])[1]
    path, node = [], leaf
    while node is not None and len(path) <= len(rows):
        path.append(node)
        node = parents.get(node)
    Message.objects.filter(pk__in=path).update(updated_at=timezone.now())
    leaf_message = Message.objects.get(pk=leaf)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=leaf_message)
    conversation.current_leaf_id = leaf
    return leaf_message


@transaction.atomic
def message_assistant_start(*, conversation: Conversation, request_id: str, context: dict, via: str = "text",
                            citations: list | None = None, parent: Message | None = None) -> Message:
    """The reply's row, streaming; it becomes the end of the current path (after `parent`, the user message)."""
    _conversation_lock(conversation)
    message = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, parent=parent,
                                     status=Message.Status.STREAMING, request_id=request_id, context=context,
                                     via=via, citations=citations or [])
    _leaf_set(conversation, message)
    return message


def message_assistant_progress(*, message_id: int, text: str) -> None:
    """Keep the partial reply in the row while it streams, so a crashed web process loses little."""
    Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(text=text)


def message_assistant_finish(
    *, message_id: int, text: str, status: str, model_name: str = "", model_note: str = "",
    usage: dict | None = None, timings: dict | None = None, error: str = "", citations: list | None = None,
    tool_steps: list | None = None,
) -> bool:
    """Settle a streaming reply once; a second settle (a retry, a race with cleanup) changes nothing.
    `citations`, when given, replaces the sources stored at the start with those the reply used;
    `tool_steps` records the built-in tools it called."""
    extra = {"citations": citations} if citations is not None else {}
    if tool_steps:
        extra["tool_steps"] = tool_steps
    settled = bool(Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        text=text, status=status, model_name=model_name, model_note=model_note[:300], usage=usage or {},
        timings=timings or {}, error=error[:2000], **extra,
    ))
    if settled and status == Message.Status.DONE:
        _reply_events(message_id=message_id)
    return settled


def _reply_events(*, message_id: int) -> None:
    """The domain events of a complete reply, recorded once: only the call whose guarded UPDATE settled
    the reply gets here. A turn runs over a socket (no HttpRequest), so consent is the user's stored one.

    `assistant_used` is counted per complete reply, not per conversation started: it measures how much
    each assistant is used, and `conversation_started` already counts the starts."""
    reply = Message.objects.filter(pk=message_id).values(
        "conversation_id", "conversation__user_id", "via", "citations", "conversation__assistant_id",
        "conversation__assistant__slug", "conversation__assistant__owner_id").first()
    if not reply:
        return
    user_id, via, citations = reply["conversation__user_id"], reply["via"], reply["citations"] or []
    event_record(user_id=user_id, name=Event.REPLY_COMPLETED, data={"via": via, "grounded": bool(citations)})
    # A user's own assistant is named by its id: its slug is made from the name the user typed.
    shared = reply["conversation__assistant__owner_id"] is None
    event_record(user_id=user_id, name=Event.ASSISTANT_USED,
                 data={"assistant": reply["conversation__assistant__slug"] if shared else "custom",
                       "assistant_id": reply["conversation__assistant_id"], "via": via})
    if via == "voice":
        event_record(user_id=user_id, name=Event.VOICE_TURN, data={"conversation": reply["conversation_id"]})
    if citations:
        event_record(user_id=user_id, name=Event.GROUNDED_ANSWER,
                     data={"via": "chat", "citations": len(citations)})


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
