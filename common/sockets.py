"""Sockets end with the session that opened them.

A WebSocket authenticates once, at its handshake, so without this an open chat or voice socket
kept working after logout, a password change or deactivation. Every signed-in socket joins its
user's group here; accounts' auth receivers send to that group, and each socket closes itself
with 4401 (the client should sign in again). Logout closes the sockets of that session only,
since the user's other sessions are still valid; a password change or deactivation closes all.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401


def auth_group(user_id: int) -> str:
    return f"auth.user.{user_id}"


def sockets_close(*, user_id: int, reason: str, session_key: str | None = None) -> None:
    """Close the user's open sockets (only those of `session_key` if given) with 4401."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            auth_group(user_id), {"type": "auth.revoked", "reason": reason, "session_key": session_key})
    except Exception:  # the sign-out itself must not fail because Redis hiccuped
        logger.warning("could not close the sockets of user %s after %s", user_id, reason, exc_info=True)


class SessionBoundSocket(AsyncWebsocketConsumer):
    """A consumer whose sockets close when their user's session ends (call `session_bind`)."""

    async def session_bind(self, user) -> bool:
        """Join the user's group, then check the session once more: a logout or password change
        that landed between the handshake and joining sent its close before we listened. False
        if the session ended meanwhile (the caller closes with 4401)."""
        self.auth_group = auth_group(user.pk)
        await self.channel_layer.group_add(self.auth_group, self.channel_name)
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        exists = bool(key) and await database_sync_to_async(session.exists)(key)
        # Channels' get_user checks the user is still active and the password hash still matches.
        current = await get_user(self.scope) if exists else None
        if current is None or not current.is_authenticated or current.pk != user.pk:
            await self.session_unbind()
            return False
        return True

    async def session_unbind(self) -> None:
        if getattr(self, "auth_group", None):
            await self.channel_layer.group_discard(self.auth_group, self.channel_name)
            self.auth_group = None

    async def auth_revoked(self, message: dict) -> None:
        session = self.scope.get("session")
        own_key = getattr(session, "session_key", None) if session is not None else None
        if message.get("session_key") and message["session_key"] != own_key:
            return
        await self.session_unbind()
        await self.close(code=CLOSE_UNAUTHENTICATED)
