"""The notifications socket through the real ASGI app: origin validation, session auth,
the Redis channel layer, and malformed frames."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.tests.factories import user_make
from common.notifications import user_notify
from config.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("socket_tasks_reaped")]


async def _session_cookie() -> bytes:
    cookie, _ = await _login()
    return cookie


async def _login() -> tuple[bytes, int]:
    def login() -> tuple[str, int]:
        user = user_make()
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value, user.pk

    session, user_id = await sync_to_async(login)()
    return f"{settings.SESSION_COOKIE_NAME}={session}".encode(), user_id


async def _connect(origin: bytes, cookie: bytes | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, "/ws/notifications/", headers=headers)


async def test_foreign_origin_is_refused_even_with_a_valid_session():
    communicator = await _connect(b"http://evil.example", await _session_cookie())

    connected, _ = await communicator.connect()

    assert connected is False


async def test_anonymous_socket_is_closed_with_4401():
    communicator = await _connect(b"http://localhost")

    connected, code = await communicator.connect()

    assert connected is False
    assert code == 4401


async def test_signed_in_user_gets_pong_and_their_events():
    cookie, user_id = await _login()
    communicator = await _connect(b"http://localhost", cookie)
    connected, _ = await communicator.connect()
    assert connected

    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from()) == {"type": "pong"}

    await sync_to_async(user_notify)(user_id=user_id, event="document.progress", data={"percent": 40})
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame == {"type": "event", "event": "document.progress", "data": {"percent": 40}}
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("send", "code"),
    [
        ({"text_data": "not json"}, "invalid_json"),
        ({"text_data": json.dumps({"type": "launch"})}, "unknown_type"),
        ({"text_data": json.dumps([1, 2])}, "unknown_type"),
        ({"bytes_data": b"\x00\x01"}, "binary_not_supported"),
    ],
)
async def test_malformed_frames_get_an_error_frame_and_the_socket_stays_usable(send, code):
    communicator = await _connect(b"http://localhost", await _session_cookie())
    await communicator.connect()

    await communicator.send_to(**send)
    frame = json.loads(await communicator.receive_from())
    assert frame["type"] == "error"
    assert frame["code"] == code
    assert frame["message"]

    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from()) == {"type": "pong"}
    await communicator.disconnect()
