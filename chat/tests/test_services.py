"""Chat's writes and reads without a model: the message tree, titles and the chats page's times."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import user_make
from chat.models import Conversation, Message
from chat.selectors import messages_path, messages_tree
from chat.services import (
    conversation_branch_select,
    conversation_rename,
    conversation_title_claim,
    conversation_title_set,
    message_assistant_start,
    message_reply_target,
    message_user_create,
    message_user_edit,
)
from chat.templatetags.chat_time import ago
from chat.tests.factories import conversation_make
from chat.titles import title_clean
from common.errors import ApplicationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(bundled_models):
    return conversation_make(user=user_make())


def _reply(conversation, user_message, text="Reply."):
    reply = message_assistant_start(conversation=conversation, request_id=f"r{Message.objects.count()}", context={},
                                    parent=user_message)
    Message.objects.filter(pk=reply.pk).update(text=text, status=Message.Status.DONE)
    return reply


def test_messages_follow_the_path_and_alternatives_count_per_parent(conversation):
    question = message_user_create(conversation=conversation, text="Question?")
    first = _reply(conversation, question)
    second = _reply(conversation, message_reply_target(conversation=conversation, message_id=first.pk))

    path = messages_path(conversation=conversation)

    assert [m.pk for m, _ in path] == [question.pk, second.pk]
    assert (path[1][1].index, path[1][1].count, path[1][1].previous_id) == (2, 2, first.pk)
    conversation_branch_select(conversation=conversation, message_id=first.pk)
    assert [m.pk for m, _ in messages_path(conversation=conversation)] == [question.pk, first.pk]
    follow_up = message_user_create(conversation=conversation, text="More?")
    assert follow_up.parent_id == first.pk


def test_an_edit_is_a_sibling_and_selecting_the_original_returns_to_its_newest_end(conversation):
    question = message_user_create(conversation=conversation, text="Question?")
    answer = _reply(conversation, question)
    edited = message_user_edit(conversation=conversation, message_id=question.pk, text="Better question?")

    assert edited.parent_id is None and Conversation.objects.get(pk=conversation.pk).current_leaf_id == edited.pk
    leaf = conversation_branch_select(conversation=conversation, message_id=question.pk)
    assert leaf.pk == answer.pk
    tree, path = messages_tree(conversation=conversation)
    assert path == [question.pk, answer.pk] and len(tree) == 3


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_edit_is_refused(conversation, text):
    question = message_user_create(conversation=conversation, text="Question?")
    with pytest.raises(ApplicationError) as refused:
        message_user_edit(conversation=conversation, message_id=question.pk, text=text)
    assert refused.value.code == "empty_message"


def test_another_conversations_message_is_not_found(conversation):
    other = conversation_make(user=user_make())
    theirs = message_user_create(conversation=other, text="Mine.")
    for call in (message_reply_target, conversation_branch_select):
        with pytest.raises(ApplicationError) as refused:
            call(conversation=conversation, message_id=theirs.pk)
        assert refused.value.code == "message_not_found" and refused.value.status == 404


def test_rows_written_without_parents_read_as_a_straight_line_and_link_on_the_next_message(conversation):
    first = Message.objects.create(conversation=conversation, role="user", text="One")
    second = Message.objects.create(conversation=conversation, role="assistant", text="Two", status="done")

    assert [m.pk for m, _ in messages_path(conversation=conversation)] == [first.pk, second.pk]
    third = message_user_create(conversation=conversation, text="Three")
    assert third.parent_id == second.pk and Message.objects.get(pk=second.pk).parent_id == first.pk
    assert [m.pk for m, _ in messages_path(conversation=conversation)] == [first.pk, second.pk, third.pk]


def test_the_first_message_gives_a_provisional_title_that_a_rename_protects(conversation):
    message_user_create(conversation=conversation, text="My printer jams every time I print double sided pages")
    conversation.refresh_from_db()
    assert conversation.title == "My printer jams every time I…" and conversation.title_source == "first_words"

    assert conversation_title_claim(conversation_id=conversation.pk)
    assert not conversation_title_claim(conversation_id=conversation.pk)  # once
    conversation_rename(conversation=conversation, title="Printer")
    assert not conversation_title_set(conversation_id=conversation.pk, title="Printer jams", source="model")
    assert Conversation.objects.get(pk=conversation.pk).title == "Printer"


@pytest.mark.parametrize(("raw", "title"), [
    ('Title: "Resetting a Forgotten Password."', "Resetting a Forgotten Password"),
    ("**Printer jams on duplex**\nMore text", "Printer jams on duplex"),
    ("one two three four five six seven eight", "one two three four five six"),
    ("   ", ""),
])
def test_title_clean(raw, title):
    assert title_clean(raw) == title


def test_ago_says_just_now_under_a_minute():
    assert ago(timezone.now()) == "just now"
    assert ago(timezone.now() - timedelta(minutes=3)) == "3\xa0minutes ago"
