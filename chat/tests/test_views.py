"""The chat pages' forms: where they send the user afterwards, and what bad input gets."""

from __future__ import annotations

import pytest

from accounts.tests.factories import user_make
from chat.models import Conversation
from chat.tests.factories import conversation_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(client, bundled_models):
    user = user_make()
    client.force_login(user)
    return conversation_make(user=user)


def test_rename_returns_to_a_local_next(client, owned):
    response = client.post(f"/app/chats/{owned.pk}/rename/", {"title": "VPN help", "next": f"/app/chats/{owned.pk}/"})

    assert response.status_code == 302 and response["Location"] == f"/app/chats/{owned.pk}/"


@pytest.mark.parametrize("target", [
    "https://evil.example/phish", "//evil.example/", "/\\evil.example", "\\\\evil.example", "javascript:alert(1)",
    "http://testserver.evil.example/", "history", "not a path", "/app/\nSet-Cookie: x=1", "\x00/app/",
])
def test_rename_never_sends_the_user_elsewhere_and_never_fails(client, owned, target):
    response = client.post(f"/app/chats/{owned.pk}/rename/", {"title": "VPN help", "next": target})

    assert response.status_code == 302
    assert response["Location"] == "/app/chats/"
    owned.refresh_from_db()
    assert owned.title == "VPN help"


@pytest.mark.parametrize("title", ["a\x00b", "\x00", "x" * 5000, "é" * 300])
def test_rename_with_hostile_titles_is_a_message_not_a_500(client, owned, title):
    response = client.post(f"/app/chats/{owned.pk}/rename/", {"title": title}, follow=True)

    assert response.status_code == 200
    stored = Conversation.objects.get(pk=owned.pk).title
    assert "\x00" not in stored and len(stored) <= 200


def test_rename_of_someone_elses_chat_is_404(client, owned):
    client.force_login(user_make())

    response = client.post(f"/app/chats/{owned.pk}/rename/", {"title": "mine now", "next": "/"})

    assert response.status_code == 404
    owned.refresh_from_db()
    assert owned.title != "mine now"


@pytest.mark.parametrize("field", ["name", "system_prompt", "description", "emoji"])
def test_a_new_assistant_with_nul_is_a_400_with_a_message(client, owned, field):
    data = {"name": "Helper", "system_prompt": "Answer briefly.", "description": "", "emoji": "🙂", field: "a\x00b"}

    response = client.post("/app/assistants/new/", data)

    assert response.status_code == 400 and "control character (NUL)" in response.content.decode()
