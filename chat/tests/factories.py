from __future__ import annotations

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.models import User
from accounts.tests.factories import user_make
from chat.models import Assistant, Conversation
from chat.services import conversation_create
from config.asgi import application


def conversation_make(*, user: User | None = None, slug: str = "general") -> Conversation:
    return conversation_create(user=user or user_make(), assistant=Assistant.objects.get(slug=slug))


async def socket_connect(path: str, user: User | None) -> tuple[WebsocketCommunicator, bool, int | None]:
    """Open a socket through the real ASGI stack (origin check, session auth) as `user`."""
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        def session() -> str:
            client = Client()
            client.force_login(user)
            return client.cookies[settings.SESSION_COOKIE_NAME].value

        cookie = await sync_to_async(session)()
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code
