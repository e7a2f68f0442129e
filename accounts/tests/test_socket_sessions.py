"""Open sockets end with the session: logout, a password change and deactivation close them with
4401, through the real ASGI stack, session middleware and Redis channel layer."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.tests.factories import PASSWORD, user_make
from chat.seed import assistants_seed
from chat.tests.factories import conversation_make
from config.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("socket_tasks_reaped")]

# Generous for a loaded 2-core machine; the close is sent as soon as the change commits.
CLOSE_WITHIN = 5


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def _open(path: str, client: Client) -> WebsocketCommunicator:
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    communicator = WebsocketCommunicator(application, path, headers=[
        (b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie.encode())])
    connected, _ = await communicator.connect()
    assert connected
    assert await _still_open(communicator)  # the consumer finished connecting (and joined its groups)
    return communicator


async def _closed_with_4401(communicator: WebsocketCommunicator) -> bool:
    output = await communicator.receive_output(timeout=CLOSE_WITHIN)
    return output == {"type": "websocket.close", "code": 4401}


async def _still_open(communicator: WebsocketCommunicator) -> bool:
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    return json.loads(await communicator.receive_from(timeout=CLOSE_WITHIN)) == {"type": "pong"}


@pytest.fixture
def world():
    assistants_seed()  # transactional tests empty the seeded table
    user = user_make()
    return user, conversation_make(user=user)


async def test_logout_closes_that_sessions_chat_voice_and_notification_sockets(world):
    user, conversation = world
    browser, other_device = await sync_to_async(_signed_in)(user), await sync_to_async(_signed_in)(user)
    sockets = [await _open(path, browser) for path in
               (f"/ws/chat/{conversation.pk}/", f"/ws/voice/{conversation.pk}/", "/ws/notifications/")]
    elsewhere = await _open(f"/ws/chat/{conversation.pk}/", other_device)

    response = await sync_to_async(browser.post)("/accounts/logout/")

    assert response.status_code == 302
    for communicator in sockets:
        assert await _closed_with_4401(communicator)
    assert await _still_open(elsewhere)  # that session was not logged out
    await elsewhere.disconnect()


async def test_a_password_change_closes_every_socket_of_the_user(world):
    user, conversation = world
    browser, other_device = await sync_to_async(_signed_in)(user), await sync_to_async(_signed_in)(user)
    here = await _open(f"/ws/chat/{conversation.pk}/", browser)
    there = await _open("/ws/notifications/", other_device)
    bystander = await _open("/ws/notifications/", await sync_to_async(_signed_in)(await sync_to_async(user_make)()))

    response = await sync_to_async(browser.post)("/accounts/password/change/", {
        "oldpassword": PASSWORD, "password1": "a new password 4 parley", "password2": "a new password 4 parley"})

    assert response.status_code == 302, response.content
    assert await _closed_with_4401(here)
    assert await _closed_with_4401(there)
    assert await _still_open(bystander)
    await bystander.disconnect()


async def test_deactivation_closes_every_socket_of_the_user(world):
    user, conversation = world
    chat = await _open(f"/ws/chat/{conversation.pk}/", await sync_to_async(_signed_in)(user))
    voice = await _open(f"/ws/voice/{conversation.pk}/", await sync_to_async(_signed_in)(user))

    def deactivate() -> None:  # what admin's change form does
        user.is_active = False
        user.save()

    await sync_to_async(deactivate)()

    assert await _closed_with_4401(chat)
    assert await _closed_with_4401(voice)


async def test_an_unrelated_save_of_the_user_closes_nothing(world):
    user, conversation = world
    chat = await _open(f"/ws/chat/{conversation.pk}/", await sync_to_async(_signed_in)(user))

    def rename() -> None:
        user.name = "Rosa"
        user.save()

    await sync_to_async(rename)()

    assert await _still_open(chat)
    await chat.disconnect()
