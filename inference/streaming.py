"""Worker → Channels group publishing, and the cancel flags both sides share.

Worker threads hand messages to one event loop that sends them in order, so a stream's
deltas never overtake each other and no thread opens its own Redis connection per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from channels.layers import get_channel_layer

from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

CANCEL_PREFIX = "parley:cancel:"
CANCEL_TTL_SECONDS = 3600
# Later deltas are coalesced: at most one message per stream this often. 40 ms is smoother than a reader
# follows (25 updates a second) and, at 30 tokens/s, halves the messages every hop (Redis, the web
# process, the socket) handles per token, CPU the model shares on a small machine.
COALESCE_SECONDS = 0.04


def request_group(request_id: str) -> str:
    return f"inference.{request_id}"


def cancel_set(job_id: str) -> None:
    redis_client().set(CANCEL_PREFIX + job_id, "1", ex=CANCEL_TTL_SECONDS)


def request_cancel_key(request_id: str) -> str:
    """The flag that stops every attempt of a request (an attempt's own flag is its job id)."""
    return f"request:{request_id}"


def cancel_requested(job_id: str) -> bool:
    return bool(redis_client().exists(CANCEL_PREFIX + job_id))


class GroupPublisher:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._ready = threading.Event()
        self._start_lock = threading.Lock()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop, self._queue = loop, asyncio.Queue()
        self._ready.set()
        loop.run_until_complete(self._sender())

    async def _sender(self) -> None:
        layer = get_channel_layer()
        while True:
            group, message, done = await self._queue.get()
            try:
                if message is not None:
                    await layer.group_send(group, message)
            except Exception:  # one lost message, not a dead publisher
                # This loop serves every stream of the worker: if it died with one failed send (Redis down
                # for a moment), every later reply would go nowhere until the worker restarted. The
                # stream that lost a message notices (a missed delta or a lost `done` ends it at the
                # gateway's deadline); the others carry on once Redis is back.
                logger.warning("publishing to %s failed; dropping one message", group, exc_info=True)
            finally:
                if done is not None:
                    done.set()

    def _ensure(self) -> None:
        if self._ready.is_set():
            return
        with self._start_lock:
            if not self._ready.is_set():
                threading.Thread(target=self._run, name="group-publisher", daemon=True).start()
                self._ready.wait(10)

    def send(self, group: str, message: dict) -> None:
        self._ensure()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (group, message, None))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything sent so far has reached Redis."""
        self._ensure()
        done = threading.Event()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, ("", None, done))
        done.wait(timeout)


publisher = GroupPublisher()
