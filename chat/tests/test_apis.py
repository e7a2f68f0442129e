"""Conversations API and the SSE stream: owners only, the same frames as the socket."""

from __future__ import annotations

import json
import urllib.request

import pytest

from accounts.tests.factories import staff_login, user_make
from chat.models import Conversation, Message
from chat.tests.factories import conversation_make
from inference.tests.factories import api_key_make

pytestmark = pytest.mark.django_db


def _auth(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_create_conversation_with_an_api_key_returns_its_socket(client, bundled_models):
    _, secret = api_key_make()

    response = client.post("/api/conversations/", {"assistant": "it-support"}, content_type="application/json",
                           **_auth(secret))

    assert response.status_code == 201
    body = response.json()
    assert body["assistant"] == "it-support" and body["socket"] == f"/ws/chat/{body['id']}/"
    assert Conversation.objects.filter(pk=body["id"]).exists()


def test_unknown_or_someone_elses_private_assistant_is_404(client, bundled_models):
    from chat.services import assistant_create

    private = assistant_create(owner=user_make(), name="Mine", system_prompt="Be brief.")
    _, secret = api_key_make()

    for slug in ("no-such-assistant", private.slug):
        response = client.post("/api/conversations/", {"assistant": slug}, content_type="application/json",
                               **_auth(secret))
        assert response.status_code == 404


def test_rename_list_and_delete(client, bundled_models):
    api_key, secret = api_key_make()
    conversation = conversation_make(user=api_key.user)

    renamed = client.patch(f"/api/conversations/{conversation.pk}/", {"title": "Printer trouble"},
                           content_type="application/json", **_auth(secret))
    listed = client.get("/api/conversations/", **_auth(secret)).json()
    deleted = client.delete(f"/api/conversations/{conversation.pk}/", **_auth(secret))

    assert renamed.json()["title"] == "Printer trouble"
    assert [c["title"] for c in listed] == ["Printer trouble"]
    assert deleted.status_code == 204 and not Conversation.objects.exists()


def test_outsiders_get_404_for_every_conversation_endpoint(client, bundled_models):
    conversation = conversation_make()
    _, secret = api_key_make()
    path = f"/api/conversations/{conversation.pk}/"

    assert client.get(path, **_auth(secret)).status_code == 404
    assert client.patch(path, {"title": "x"}, content_type="application/json", **_auth(secret)).status_code == 404
    assert client.delete(path, **_auth(secret)).status_code == 404
    assert client.post(path + "messages", {"text": "hi"}, content_type="application/json",
                       **_auth(secret)).status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk, title="").exists()


def test_pages_are_404_for_outsiders(client, bundled_models):
    conversation = conversation_make()
    client.force_login(user_make())

    assert client.get(f"/app/chats/{conversation.pk}/").status_code == 404
    assert client.post(f"/app/chats/{conversation.pk}/delete/").status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_history_page_renames_and_deletes(client, bundled_models):
    user = user_make()
    conversation = conversation_make(user=user)
    client.force_login(user)

    client.post(f"/app/chats/{conversation.pk}/rename/", {"title": "VPN help"})
    assert "VPN help" in client.get("/app/chats/").content.decode()
    client.post(f"/app/chats/{conversation.pk}/delete/")
    assert not Conversation.objects.exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sse_stream_gives_the_same_frames_as_the_socket(live_daphne, celery_worker, bundled_models):
    api_key, secret = api_key_make()
    conversation = conversation_make(user=api_key.user)
    request = urllib.request.Request(
        f"{live_daphne['url']}/api/conversations/{conversation.pk}/messages", method="POST",
        data=json.dumps({"text": "Say hello."}).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})

    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        frames = [json.loads(line[6:]) for line in response.read().decode().splitlines()
                  if line.startswith("data: ")]

    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "start" and "delta" in kinds and kinds[-2:] == ["done", "metrics"]
    reply = Message.objects.get(role="assistant")
    assert reply.status == "done" and reply.text == "".join(f["text"] for f in frames if f["type"] == "delta")


def test_stale_streaming_replies_are_marked_interrupted(bundled_models):
    from django.utils import timezone

    from chat.services import message_assistant_start, messages_interrupt_stale

    conversation = conversation_make()
    stale = message_assistant_start(conversation=conversation, request_id="r1", context={})
    fresh = message_assistant_start(conversation=conversation, request_id="r2", context={})
    Message.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - timezone.timedelta(hours=1))

    assert messages_interrupt_stale(older_than_seconds=600) == 1
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, fresh.status) == ("interrupted", "streaming")
    assert "server stopped" in stale.error


def test_staff_manage_assistants_in_admin(client, bundled_models):
    staff_login(client, user_make(is_staff=True, is_superuser=True))

    response = client.post("/admin/chat/assistant/add/", {
        "name": "Procurement", "slug": "procurement", "emoji": "⚖️", "description": "Contracts",
        "system_prompt": "Be careful.", "route_alias": "chat-default", "temperature": 0.2, "max_tokens": 400,
        "is_active": "on", "tools": '["send_email", "knowledge_search"]', "knowledge_collections": "null"})

    assert response.status_code == 302
    from chat.models import Assistant

    created = Assistant.objects.get(slug="procurement")
    assert created.owner is None and created.tools == ["knowledge_search", "send_email"]
    refused = client.post("/admin/chat/assistant/add/", {
        "name": "Shell", "slug": "shell", "system_prompt": "x", "route_alias": "chat-default", "temperature": 0.2,
        "max_tokens": 400, "tools": '["shell"]', "knowledge_collections": "null"})
    assert refused.status_code == 200 and "No such tool: shell" in refused.content.decode()
    client.force_login(user_make())  # a staff assistant is offered to everyone
    assert "Start chatting with Procurement" in client.get("/app/assistants/").content.decode()
