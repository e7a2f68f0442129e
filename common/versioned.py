"""Per-process copies of rows that are read on every request and change rarely, kept honest by one
version key in Redis.

Each copy remembers the version it was read at. A read first asks Redis for the current version (one
GET, a fifth of a millisecond here, against about 1.5 ms for an ORM query on this machine) and reads
the database again when it differs or the copy is older than `max_age`. A write marks the data changed
once its transaction commits (`changed()`), which stores a new random version, so every process rereads
on its next use. Nothing is cached inside a transaction (what it read could still be rolled back), and
when Redis can't say, the database is read every time.

The model catalog (inference.selectors), API keys (accounts.selectors) and the plans and offers every
request's limits come from (billing.selectors) use it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import redis
from django.db import connection, transaction

from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

T = TypeVar("T")
_MISSING = object()
_all: list[VersionedCache] = []


class VersionedCache(Generic[T]):
    """Values by key, each valid while Redis holds the version it was read at (and for `max_age` seconds)."""

    def __init__(self, version_key: str, *, max_age: float = 30.0, max_entries: int = 4096) -> None:
        self.version_key = version_key
        self.max_age = max_age
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[str, float, T]] = OrderedDict()
        self._lock = threading.Lock()
        _all.append(self)

    def version(self) -> str | None:
        """The current version (made on first use), or None when Redis can't say."""
        client = redis_client()
        try:
            version = client.get(self.version_key)
            if version is None:  # first use, or Redis was emptied: any copy made before is suspect
                client.set(self.version_key, uuid.uuid4().hex, nx=True)
                version = client.get(self.version_key)
        except redis.RedisError:
            logger.warning("%s is unreadable; reading the database", self.version_key)
            return None
        return version.decode() if isinstance(version, bytes) else version

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The value for `key`: this process's copy if still current, else `load()` (stored unless None)."""
        if connection.in_atomic_block:
            return load()
        version = self.version()  # before reading: a change made meanwhile bumps it again
        if version is None:
            return load()
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is not _MISSING and entry[0] == version and time.monotonic() - entry[1] < self.max_age:
                self._entries.move_to_end(key)
                return entry[2]
        value = load()
        if value is not None:  # misses (a wrong API key) are not kept: guesses must not fill the cache
            with self._lock:
                self._entries[key] = (version, time.monotonic(), value)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return value

    def changed(self) -> None:
        """Every process's copies are old once the current transaction commits (at once outside one)."""
        transaction.on_commit(self.bump)

    def bump(self) -> None:
        try:
            redis_client().set(self.version_key, uuid.uuid4().hex)
        except redis.RedisError:  # the copies still expire within max_age
            logger.warning("could not mark %s as changed; processes catch up within %.0f s",
                           self.version_key, self.max_age)


def versioned_all_bump() -> None:
    """Mark every cache's data changed now (a test teardown that flushed the tables without signals)."""
    for cache in _all:
        cache.bump()
