"""Celery worker heartbeats in Redis, so readiness and admin can see live workers without a
broadcast round trip. Each worker refreshes a key with a TTL; a dead worker's key expires."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

KEY_PREFIX = "parley:worker:"
# A worker that stops beating is gone after TTL_SECONDS; callers waiting on it give up then.
INTERVAL_SECONDS = float(os.environ.get("PARLEY_HEARTBEAT_INTERVAL") or 5)
TTL_SECONDS = int(os.environ.get("PARLEY_HEARTBEAT_TTL") or 15)

# The names of the workers that wrote a heartbeat (a sorted set, by time of the last one).
REGISTER_KEY = "parley:workers"
REGISTER_FORGET_SECONDS = 3600

# Other apps add facts to the heartbeat (the inference runtime adds loaded models).
heartbeat_extras: list[Callable[[], dict[str, object]]] = []

_stop = threading.Event()
_thread: threading.Thread | None = None
_identity: dict[str, object] = {}


def heartbeat_payload(*, hostname: str, queues: list[str]) -> dict[str, object]:
    payload: dict[str, object] = {
        "hostname": hostname,
        "queues": sorted(queues),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "last_seen": time.time(),
    }
    for extra in heartbeat_extras:
        payload.update(extra())
    return payload


def heartbeat_write(*, hostname: str, queues: list[str]) -> None:
    heartbeat_store(hostname=hostname, payload=heartbeat_payload(hostname=hostname, queues=queues))


def heartbeat_store(*, hostname: str, payload: dict[str, object], ttl: int = TTL_SECONDS) -> None:
    """A worker's heartbeat (its key, gone `ttl` seconds after the last one) and its name in the register of
    workers, which is how readers find the keys without scanning the keyspace."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(KEY_PREFIX + hostname, json.dumps(payload), ex=ttl)
    pipe.zadd(REGISTER_KEY, {hostname: time.time()})
    pipe.execute()


def heartbeat_now() -> None:
    """Write this worker's heartbeat at once, e.g. right after a model finished loading."""
    if _identity:
        heartbeat_write(hostname=_identity["hostname"], queues=_identity["queues"])


def heartbeat_start(*, hostname: str, queues: list[str]) -> None:
    global _thread
    _stop.clear()
    _identity.update(hostname=hostname, queues=queues)

    def beat() -> None:
        while not _stop.is_set():
            try:
                heartbeat_write(hostname=hostname, queues=queues)
            except Exception:
                logger.warning("heartbeat write failed", exc_info=True)
            _stop.wait(INTERVAL_SECONDS)

    _thread = threading.Thread(target=beat, name="parley-heartbeat", daemon=True)
    _thread.start()


def heartbeat_stop() -> None:
    _stop.set()


def worker_alive(hostname: str) -> bool:
    return bool(redis_client().exists(KEY_PREFIX + hostname))


# The registered names' heartbeats in one round trip; names unseen for REGISTER_FORGET_SECONDS are dropped.
# A SCAN for the keys walked the whole keyspace (quotas, events, sessions) in pages of 100, on every request
# that picks a queue.
_ALIVE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
if #names == 0 then return {} end
local keys = {}
for i, name in ipairs(names) do keys[i] = ARGV[2] .. name end
return redis.call('MGET', unpack(keys))
"""


def workers_alive() -> list[dict[str, object]]:
    """Live workers (a heartbeat key not yet expired), newest heartbeat first."""
    raws = redis_client().eval(_ALIVE_SCRIPT, 1, REGISTER_KEY, time.time() - REGISTER_FORGET_SECONDS, KEY_PREFIX)
    workers = [json.loads(raw) for raw in raws if raw]
    return sorted(workers, key=lambda worker: worker["last_seen"], reverse=True)
