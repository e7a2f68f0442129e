"""common.versioned: a process's copy is used while the version holds, and never when it can't be trusted."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.db import transaction

from common.versioned import VersionedCache

pytestmark = [pytest.mark.django_db(transaction=True)]


def _cache() -> VersionedCache:
    return VersionedCache(f"parley:test:versioned:{uuid.uuid4().hex}")


def _loader(values: list[object]):
    calls = []

    def load():
        calls.append(1)
        return values[len(calls) - 1]
    return load, calls


def test_a_copy_is_used_until_a_committed_change():
    cache = _cache()
    load, calls = _loader(["first", "second", "third"])
    assert cache.get("k", load) == "first"
    assert cache.get("k", load) == "first" and len(calls) == 1

    with transaction.atomic():
        cache.changed()
        assert cache.get("k", load) == "second"  # inside a transaction: read, never the copy
    assert cache.get("k", load) == "third" and len(calls) == 3  # the old copy is not used after the commit
    assert cache.get("k", load) == "third" and len(calls) == 3


def test_a_rolled_back_change_keeps_the_copy():
    cache = _cache()
    cache.get("k", lambda: "kept")
    with pytest.raises(RuntimeError), transaction.atomic():
        cache.changed()
        raise RuntimeError("rolled back")
    assert cache.get("k", lambda: pytest.fail("nothing changed")) == "kept"


def test_misses_are_not_kept():
    cache = _cache()
    load, calls = _loader([None, None, "found"])
    assert cache.get("guess", load) is None
    assert cache.get("guess", load) is None
    assert cache.get("guess", load) == "found" and len(calls) == 3


def test_without_redis_every_read_goes_to_the_database(monkeypatch):
    cache = _cache()
    cache.get("k", lambda: "old")

    def down(*args, **kwargs):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr("redis.Redis.get", down)
    load, calls = _loader(["fresh", "fresher"])
    assert cache.get("k", load) == "fresh" and cache.get("k", load) == "fresher" and len(calls) == 2


def test_an_emptied_redis_makes_every_copy_suspect():
    from common.redis_connection import redis_client

    cache = _cache()
    cache.get("k", lambda: "before")
    redis_client().delete(cache.version_key)
    assert cache.get("k", lambda: "after") == "after"


def test_the_oldest_entries_go_first_when_full():
    cache = VersionedCache(f"parley:test:versioned:{uuid.uuid4().hex}", max_entries=2)
    for key in ("a", "b", "c"):
        cache.get(key, lambda key=key: key.upper())
    assert cache.get("a", lambda: "reloaded") == "reloaded"
    assert cache.get("c", lambda: pytest.fail("c is still kept")) == "C"
