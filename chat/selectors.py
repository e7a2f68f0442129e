"""Reads for assistants, conversations and messages. Every read is scoped to the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from accounts.models import User
from chat.models import Assistant, Conversation, Message


def assistants_for_user(*, user: User) -> QuerySet[Assistant]:
    """Staff assistants (no owner) and the user's own."""
    return Assistant.objects.filter(Q(owner__isnull=True) | Q(owner=user), is_active=True).order_by("name", "id")


def conversations_of_user(*, user: User, query: str = "") -> QuerySet[Conversation]:
    """The user's conversations, newest first; `query` keeps those whose title contains it."""
    conversations = Conversation.objects.filter(user=user)
    if query.strip():
        conversations = conversations.filter(title__icontains=query.strip()[:200])
    return conversations.select_related("assistant").order_by("-updated_at", "-id")


def conversation_get(*, user: User, conversation_id: int) -> Conversation | None:
    """The user's conversation, or None: another user's conversation is indistinguishable from none."""
    return conversations_of_user(user=user).filter(pk=conversation_id).first()


def messages_of_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation).order_by("created_at", "id")


@dataclass(frozen=True)
class Alternatives:
    """Where a message stands among its siblings (regenerated replies, edited messages): "‹ 2/3 ›"."""

    index: int  # 1-based
    count: int
    previous_id: int | None
    next_id: int | None


def _tree(conversation: Conversation) -> tuple[list[Message], dict[int, int | None], int | None]:
    """Every message, each one's parent, and the current leaf (re-read: a socket's Conversation object lives
    as long as the socket)."""
    messages = list(messages_of_conversation(conversation=conversation))
    leaf_id = Conversation.objects.filter(pk=conversation.pk).values_list("current_leaf_id", flat=True).first()
    parents: dict[int, int | None] = {}
    previous = None
    for message in messages:
        # No leaf: rows from before messages had parents (or written directly), a straight line.
        parents[message.pk] = message.parent_id if leaf_id is not None or message.parent_id else previous
        previous = message.pk
    if leaf_id is None and messages:
        leaf_id = messages[-1].pk
    return messages, parents, leaf_id


def _ancestry(messages: list[Message], parents: dict[int, int | None], start: int | None) -> list[Message]:
    by_id = {message.pk: message for message in messages}
    path, node = [], start
    while node is not None and node in by_id and len(path) <= len(messages):
        path.append(by_id[node])
        node = parents[node]
    path.reverse()
    return path


def messages_path(*, conversation: Conversation) -> list[tuple[Message, Alternatives]]:
    """The messages the page shows and the next turn continues: root to the conversation's current leaf, each
    with its alternatives."""
    messages, parents, leaf_id = _tree(conversation)
    groups = _sibling_groups(messages, parents)
    return [(m, _alternatives_in(groups[(parents[m.pk], m.role)], m.pk))
            for m in _ancestry(messages, parents, leaf_id)]


def _sibling_groups(messages: list[Message], parents: dict[int, int | None]) -> dict[tuple, list[int]]:
    groups: dict[tuple[int | None, str], list[int]] = {}
    for message in messages:
        groups.setdefault((parents[message.pk], message.role), []).append(message.pk)
    return groups


def _alternatives_in(group: list[int], pk: int) -> Alternatives:
    at = group.index(pk)
    return Alternatives(index=at + 1, count=len(group), previous_id=group[at - 1] if at > 0 else None,
                        next_id=group[at + 1] if at + 1 < len(group) else None)


def messages_tree(*, conversation: Conversation) -> tuple[list[tuple[Message, Alternatives]], list[int]]:
    """Every message (creation order) with its alternatives, and the ids of the current path (for the API)."""
    messages, parents, leaf_id = _tree(conversation)
    groups = _sibling_groups(messages, parents)
    return ([(m, _alternatives_in(groups[(parents[m.pk], m.role)], m.pk)) for m in messages],
            [m.pk for m in _ancestry(messages, parents, leaf_id)])


def messages_before(*, conversation: Conversation, message: Message) -> list[Message]:
    """The messages a message follows on its branch, root first (the history of a turn answering it)."""
    messages, parents, _ = _tree(conversation)
    return _ancestry(messages, parents, parents.get(message.pk))


def messages_to_leaf(*, conversation: Conversation) -> tuple[list[Message], int | None]:
    """The history a new message would follow (root to the current leaf) and that leaf's id: what a reply
    begun before its message is stored (a speculative voice turn) answers after."""
    messages, parents, leaf_id = _tree(conversation)
    return _ancestry(messages, parents, leaf_id), leaf_id


def message_alternatives(*, message: Message) -> Alternatives:
    """Where one message stands among its siblings (for the frames of a turn that just made it)."""
    group = list(Message.objects.filter(conversation_id=message.conversation_id, parent_id=message.parent_id,
                                        role=message.role).order_by("created_at", "id").values_list("pk", flat=True))
    return _alternatives_in(group, message.pk)


def replies_completed_count(*, user_id: int) -> int:
    """Complete assistant replies in the user's conversations (the First Chat badge)."""
    return Message.objects.filter(conversation__user_id=user_id, role=Message.Role.ASSISTANT,
                                  status=Message.Status.DONE).count()


def conversations_active_since(*, user: User, since) -> int:
    """The user's conversations with any activity since `since` (welcome: "your chats this week")."""
    return Conversation.objects.filter(user=user, updated_at__gte=since).count()


def conversation_latest(*, user: User) -> Conversation | None:
    return conversations_of_user(user=user).first()


def replies_counts_between(*, start: datetime, end: datetime) -> dict[str, int]:
    """Replies started in [start, end) across all users, and how many failed: for the hourly error-rate
    alert (staff-only figures, so not scoped to a caller). A stopped reply is interrupted, not failed;
    one still streaming is left out until it settles."""
    counts = (Message.objects.filter(role=Message.Role.ASSISTANT, created_at__gte=start, created_at__lt=end)
              .exclude(status=Message.Status.STREAMING)
              .aggregate(replies=Count("id"), failed=Count("id", filter=Q(status=Message.Status.FAILED))))
    return {"replies": counts["replies"] or 0, "failed": counts["failed"] or 0}
