"""Reads for assistants, conversations and messages. Every read is scoped to the caller."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from accounts.models import User
from chat.models import Assistant, Conversation, Message


def assistants_for_user(*, user: User) -> QuerySet[Assistant]:
    """Staff assistants (no owner) and the user's own."""
    return Assistant.objects.filter(Q(owner__isnull=True) | Q(owner=user), is_active=True).order_by("name", "id")


def conversations_of_user(*, user: User) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user=user).select_related("assistant").order_by("-updated_at", "-id")


def conversation_get(*, user: User, conversation_id: int) -> Conversation | None:
    """The user's conversation, or None: another user's conversation is indistinguishable from none."""
    return conversations_of_user(user=user).filter(pk=conversation_id).first()


def messages_of_conversation(*, conversation: Conversation) -> QuerySet[Message]:
    return Message.objects.filter(conversation=conversation).order_by("created_at", "id")
