"""Worker → web events of a streaming job, and the cancel flags both sides share.

A stream's events go into a Redis list of their own (`parley:events:<request id>`): the worker thread
that generates RPUSHes each one, and the web process that asked for the reply BLPOPs them. A list,
unlike pub/sub, keeps what was pushed before anyone reads it, so the web side sends the job first and
starts reading whenever it gets there: the job's trip to the worker overlaps the response's start
instead of waiting behind a SUBSCRIBE and its confirmation (the first token comes that much sooner).
Before this, pub/sub replaced the Channels layer, which cost about eight times as much per message
(3 ms against 0.4 ms here: its group bookkeeping, Lua scripts and locks). A list nobody reads (the
client left) expires EVENTS_TTL_SECONDS after its last event; the reader deletes it when it is done.
One thread pushes all of a stream's events, so they arrive in order.
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
CANCEL_PREFIX = "parley:cancel:"
CANCEL_TTL_SECONDS = 3600
# Later deltas are coalesced: at most one message per stream this often. 40 ms is smoother than a reader
# follows (25 updates a second) and, at 30 tokens/s, halves the messages every hop (Redis, the web
# process, the socket) handles per token, CPU the model shares on a small machine.
COALESCE_SECONDS = 0.04
# An unread stream's events are dropped this long after its last one.
EVENTS_TTL_SECONDS = 300


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
    """Add one event to a stream's list (kept EVENTS_TTL_SECONDS after the last one if nobody reads it)."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.rpush(channel, json.dumps(message, separators=(",", ":")))
        pipe.expire(channel, EVENTS_TTL_SECONDS)
        pipe.execute()
    except redis.RedisError:  # one lost event, not a failed reply: the gateway's deadlines notice a lost done
        logger.warning("publishing to %s failed; dropping one event", channel, exc_info=True)


# One client (a connection pool) per event loop: redis.asyncio connections belong to the loop that made them.
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aredis.Redis] = weakref.WeakKeyDictionary()


def _async_client() -> aredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        # No socket timeout: a reader blocks as long as a reply takes; the gateway has its own deadlines.
        # Retries reconnect after a Redis restart instead of failing the stream.
        client = _async_clients[loop] = aredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=None, decode_responses=True,
            retry=Retry(ExponentialBackoff(cap=2, base=0.1), 4),
            # A cancelled read drops its connection, so new ones are made often: skip the two CLIENT
            # SETINFO round trips per connect.
            lib_name=None, lib_version=None)
    return client


@contextlib.asynccontextmanager
async def events_read(channel: str) -> AsyncIterator[asyncio.Queue]:
    """A queue of the events pushed to `channel`, those pushed before entering included; the list is
    deleted on exit (a worker still pushing recreates it, and it expires)."""
    client = _async_client()
    inbox: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        while True:
            try:
                # Blocks until an event comes; a cancelled BLPOP drops its connection (redis-py), not the pool.
                _, raw = await client.blpop([channel], timeout=0)
            except (OSError, redis.RedisError):
                # Redis restarted or the connection broke: what is still in the list is read on the next try.
                logger.warning("reading %s failed; trying again", channel, exc_info=True)
                await asyncio.sleep(0.05)
                continue
            await inbox.put(json.loads(raw))

    reader = asyncio.create_task(read())
    try:
        yield inbox
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        with contextlib.suppress(Exception):
            await client.delete(channel)
