"""Worker → web events of a streaming job, and the cancel flags both sides share.

A stream's events go over Redis pub/sub, on a channel of their own (`parley:events:<request id>`):
one PUBLISH from the worker thread that generates, one pushed message to the web process that
subscribed before it sent the job. The Channels layer did this before, at about eight times the cost
per message (3 ms against 0.4 ms, measured side by side on this busy 2-core machine: its group
bookkeeping, Lua scripts and locks), on every
delta of every reply. Pub/sub keeps nothing for a subscriber that is not there, which is what a
stream wants: the web side subscribes (and waits for Redis to confirm) before the job exists, a
client that left wants nothing more, and a reply whose web process died is finished from the
worker's stored outcome (chat's sweep), not from the stream. One thread publishes all of a stream's
events, so they arrive in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator

import redis
import redis.asyncio as aredis
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

EVENTS_PREFIX = "parley:events:"
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
CANCEL_PREFIX = "parley:cancel:"
CANCEL_TTL_SECONDS = 3600
# Later deltas are coalesced: at most one message per stream this often. 40 ms is smoother than a reader
# follows (25 updates a second) and, at 30 tokens/s, halves the messages every hop (Redis, the web
# process, the socket) handles per token, CPU the model shares on a small machine.
COALESCE_SECONDS = 0.04


def request_events_channel(request_id: str) -> str:
    return EVENTS_PREFIX + request_id


def cancel_set(job_id: str) -> None:
    redis_client().set(CANCEL_PREFIX + job_id, "1", ex=CANCEL_TTL_SECONDS)


def request_cancel_key(request_id: str) -> str:
    """The flag that stops every attempt of a request (an attempt's own flag is its job id)."""
    return f"request:{request_id}"


def cancel_requested(job_id: str) -> bool:
    return bool(redis_client().exists(CANCEL_PREFIX + job_id))


def event_publish(channel: str, message: dict) -> None:
    """Send one event of a stream to whoever subscribed to `channel` (no one: it is dropped)."""
    try:
        redis_client().publish(channel, json.dumps(message, separators=(",", ":")))
    except redis.RedisError:  # one lost event, not a failed reply: the gateway's deadlines notice a lost done
        logger.warning("publishing to %s failed; dropping one event", channel, exc_info=True)


# One client (a connection pool) per event loop: redis.asyncio connections belong to the loop that made them.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = weakref.WeakKeyDictionary()


def _async_client() -> aredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # No socket timeout: a subscriber waits as long as a reply takes; the gateway has its own deadlines.
        # Retries reconnect after a Redis restart instead of failing the stream's subscribe.
        client = _async_clients[loop] = aredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=None, decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=2, base=0.1), 4),
            # Each stream subscribes on a new connection: skip the two CLIENT SETINFO round trips per connect.
            lib_name=None, lib_version=None)
    return client


@contextlib.asynccontextmanager
async def events_subscribed(channel: str) -> AsyncIterator[asyncio.Queue]:
    """A queue of the events published on `channel`, subscribed (and confirmed by Redis) on entry, so
    nothing published after entering is missed."""
    pubsub = _async_client().pubsub()
    try:
        await pubsub.subscribe(channel)
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
            while (confirm := await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_SECONDS)) is None \
                    or confirm["type"] != "subscribe":
                pass
    except BaseException:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        raise
    inbox: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            except (OSError, redis.RedisError):
                # redis-py reconnects and subscribes again on the next read; what was published meanwhile is lost.
                logger.warning("reading %s failed; resubscribing", channel, exc_info=True)
                await asyncio.sleep(0.05)
                continue
            if message is not None and message.get("type") == "message":
                await inbox.put(json.loads(message["data"]))

    reader = asyncio.create_task(read())
    try:
        yield inbox
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # drops the connection: a read cancelled midway leaves it unusable
