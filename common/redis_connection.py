"""One Redis client per process for Parley's own keys (heartbeats, flags, rate limits)."""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    # A short timeout: a probe or a rate limiter must fail fast, not hang a request.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
