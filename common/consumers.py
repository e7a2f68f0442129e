from __future__ import annotations

import json

from common.notifications import BROADCAST_GROUP, user_group
from common.sockets import CLOSE_UNAUTHENTICATED, SessionBoundSocket


class NotificationsConsumer(SessionBoundSocket):
    """A signed-in user's live event stream. Frames in: `ping`. Frames out: `event`, `pong`, `error`."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self.session_bind(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.channel_layer.group_add(BROADCAST_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.session_unbind()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.channel_layer.group_discard(BROADCAST_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self._error("binary_not_supported", "This socket takes JSON text frames only.")
            return
        try:
            frame = json.loads(text_data)
        except json.JSONDecodeError:
            await self._error("invalid_json", "Frames must be JSON objects.")
            return
        if not isinstance(frame, dict) or frame.get("type") != "ping":
            await self._error("unknown_type", 'Unknown frame type; this socket accepts {"type": "ping"}.')
            return
        await self.send(text_data=json.dumps({"type": "pong"}))

    async def user_event(self, message: dict) -> None:
        await self.send(text_data=json.dumps({"type": "event", "event": message["event"], "data": message["data"]}))

    async def _error(self, code: str, text: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": text}))
