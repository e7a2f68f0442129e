"""Text chat over `ws/chat/<conversation>/`. Frames are described in docs/protocol.md."""

from __future__ import annotations

import asyncio
import json
import logging

from asgiref.sync import sync_to_async

from chat.frames import message_frame
from chat.metrics import SOCKET_CONNECTIONS, SOCKET_ERRORS
from chat.models import Message
from chat.selectors import conversation_get, messages_path
from chat.services import conversation_branch_select
from chat.titles import conversation_group
from chat.turns import Turn
from common.errors import ApplicationError
from common.sockets import CLOSE_UNAUTHENTICATED, SessionBoundSocket
from common.text import control_character_find

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
MAX_TEXT_FRAME_BYTES = 64 * 1024


class ChatSocket(SessionBoundSocket):
    """Shared parts: authentication (for as long as the session lasts), ownership, JSON frames,
    and the running turn."""

    socket_kind = "chat"  # the metrics label

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()  # accept first so the close code reaches the browser
        if user is None or not user.is_authenticated or not await self.session_bind(user):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.conversation = await sync_to_async(
            lambda: conversation_get(user=user, conversation_id=conversation_id)
        )()
        if self.conversation is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        # Resolve lazily-loaded relations now, while we may touch the database synchronously.
        await sync_to_async(lambda: self.conversation.assistant)()
        self.user = user
        SOCKET_CONNECTIONS.labels(self.socket_kind).inc()
        self.generation: asyncio.Task | None = None
        self.current_message_id: int | None = None

    async def disconnect(self, code: int) -> None:
        await self.session_unbind()
        await self.cancel_generation()

    async def send_frame(self, frame: dict) -> None:
        if frame.get("type") == "error":
            SOCKET_ERRORS.labels(self.socket_kind).inc()
        await self.send(text_data=json.dumps(frame))

    async def error(self, code: str, message: str) -> None:
        await self.send_frame({"type": "error", "code": code, "message": message})

    async def parse(self, text_data: str) -> dict | None:
        if len(text_data) > MAX_TEXT_FRAME_BYTES:
            await self.error("frame_too_large", f"Text frames are limited to {MAX_TEXT_FRAME_BYTES} bytes.")
            return None
        try:
            frame = json.loads(text_data)
        except json.JSONDecodeError:
            await self.error("invalid_json", "Frames must be JSON objects with a `type`.")
            return None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.error("invalid_frame", "Frames must be JSON objects with a string `type`.")
            return None
        return frame

    def generating(self) -> bool:
        return self.generation is not None and not self.generation.done()

    async def start_turn(self, turn: Turn, on_frame=None) -> None:
        async def run() -> None:
            try:
                async for frame in turn.run():
                    if frame["type"] == "start":
                        self.current_message_id = frame["message_id"]
                    await self.send_frame(frame)
                    if on_frame is not None:
                        await on_frame(frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("chat turn failed")
                await self.error("internal_error", "Something went wrong while writing the reply. Try again.")

        self.generation = asyncio.create_task(run())

    async def cancel_generation(self) -> bool:
        """Stop the running turn; its partial reply is kept as interrupted. True if one was running."""
        return await task_cancel(getattr(self, "generation", None))


_INVALID = object()
MAX_KNOWLEDGE_COLLECTIONS = 50


class ChatConsumer(ChatSocket):
    """Frames in: user_message, regenerate, edit, select, path, stop, ping. Frames out: title, start, delta, done,
    error, metrics, path, pong."""

    async def connect(self) -> None:
        await super().connect()
        if getattr(self, "user", None) is not None:
            # The model's title arrives from a Celery task (chat.titles) on the conversation's group.
            self.group = conversation_group(self.conversation.pk)
            await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await super().disconnect(code)

    async def conversation_title(self, event: dict) -> None:
        await self.send_frame({"type": "title", "title": event["title"], "source": event["source"]})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.error("binary_not_supported", "The text chat socket takes JSON text frames only.")
            return
        frame = await self.parse(text_data)
        if frame is None:
            return
        kind = frame["type"]
        if kind == "ping":
            await self.send_frame({"type": "pong"})
        elif kind == "stop":
            if await self.cancel_generation():
                await self.send_frame({"type": "done", "message_id": self.current_message_id,
                                       "finish_reason": "stopped", "status": Message.Status.INTERRUPTED})
        elif kind == "user_message":
            text = await self.text_of(frame, "user_message")
            model = await self.model_of(frame)
            if text is None or model is None or not await self.idle():
                return
            use_knowledge = frame.get("use_knowledge")
            collections = await self.collections_of(frame)
            if collections is _INVALID:
                return
            await self.start_turn(Turn(user=self.user, conversation=self.conversation, text=text, model=model,
                                       use_knowledge=use_knowledge if isinstance(use_knowledge, bool) else None,
                                       knowledge_collections=collections))
        elif kind == "regenerate":
            message_id = await self.message_id_of(frame, "regenerate")
            model = await self.model_of(frame)
            if message_id is None or model is None or not await self.idle():
                return
            await self.start_turn(Turn(user=self.user, conversation=self.conversation, regenerate=message_id,
                                       model=model))
        elif kind == "edit":
            message_id = await self.message_id_of(frame, "edit")
            text = await self.text_of(frame, "edit") if message_id is not None else None
            model = await self.model_of(frame) if text is not None else None
            if model is None or not await self.idle():
                return
            await self.start_turn(Turn(user=self.user, conversation=self.conversation, edit=message_id, text=text,
                                       model=model))
        elif kind == "path":
            path = await sync_to_async(self.path, thread_sensitive=False)()
            await self.send_frame(path)
        elif kind == "select":
            message_id = await self.message_id_of(frame, "select")
            if message_id is None or not await self.idle():
                return
            try:
                path = await sync_to_async(self.branch_select, thread_sensitive=False)(message_id)
            except ApplicationError as exc:
                await self.error(exc.code, exc.message)
                return
            await self.send_frame(path)
        else:
            await self.error("unknown_type", f"Unknown frame type {kind!r}; use user_message, regenerate, edit, "
                                             "select, path, stop or ping.")

    def branch_select(self, message_id: int) -> dict:
        conversation_branch_select(conversation=self.conversation, message_id=message_id)
        return self.path()

    def path(self) -> dict:
        messages = [message_frame(m, alt) for m, alt in messages_path(conversation=self.conversation)]
        return {"type": "path", "leaf_id": messages[-1]["id"] if messages else None, "messages": messages}

    async def idle(self) -> bool:
        if self.generating():
            await self.error("busy", "A reply is still being written. Send `stop` first or wait for `done`.")
            return False
        return True

    async def text_of(self, frame: dict, kind: str) -> str | None:
        text = frame.get("text")
        if not isinstance(text, str) or not text.strip():
            await self.error("empty_message", f"`{kind}` needs a non-empty `text` string.")
            return None
        if (char := control_character_find(text)) is not None:
            await self.error("invalid_text", f"The message contains a control character (U+{ord(char):04X}); "
                                             "remove it and send it again.")
            return None
        return text

    async def model_of(self, frame: dict) -> str | None:
        model = frame.get("model", "")
        if not isinstance(model, str) or len(model) > 100 or control_character_find(model) is not None:
            await self.error("invalid_model", "`model` must be the id of a model or route (at most 100 "
                                              "characters), as listed in the composer or GET /v1/models.")
            return None
        return model.strip()

    async def collections_of(self, frame: dict) -> object:
        """`knowledge_collections`: absent (the conversation's choice, ...), "all" (None), or collection ids."""
        if "knowledge_collections" not in frame:
            return ...
        value = frame["knowledge_collections"]
        if value == "all" or value is None:
            return None
        if (isinstance(value, list) and len(value) <= MAX_KNOWLEDGE_COLLECTIONS
                and all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**31 for i in value)):
            return sorted(set(value))
        await self.error("invalid_knowledge_collections",
                         '`knowledge_collections` must be "all" or a list of at most '
                         f"{MAX_KNOWLEDGE_COLLECTIONS} collection ids (whole numbers), as the composer lists them.")
        return _INVALID

    async def message_id_of(self, frame: dict, kind: str) -> int | None:
        message_id = frame.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool) or message_id <= 0:
            await self.error("invalid_message_id", f"`{kind}` needs `message_id`, the id of a message in this "
                                                   "conversation (from `start` or `path` frames).")
            return None
        return message_id


async def task_cancel(task: asyncio.Task | None) -> bool:
    """Cancel a task and wait for it to unwind; True if it was still running."""
    if task is None or task.done():
        return False
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return True
