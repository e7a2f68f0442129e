"""Requests-per-minute and tokens-per-day limits, enforced atomically in Redis.

A request reserves its worst case (prompt estimate + max_tokens) against every token budget
in one Lua script, which either admits it under all limits or changes nothing. The reservation
is settled to the real count when the request ends. Concurrent requests therefore cannot
overrun a budget: at most the prompt estimate's error of one request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from common.redis_connection import redis_client

# KEYS: counters. ARGV: n, then per counter: limit, amount, ttl, kind (r = requests, t = tokens).
# Token counters may admit less than asked (down to `min_tokens`) so a nearly spent budget still
# serves a shorter answer. Returns {granted_tokens} or {-1, index} for the first limit hit.
_RESERVE = """
local n = tonumber(ARGV[1])
local min_tokens = tonumber(ARGV[2])
local grant = nil
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local kind = ARGV[base + 4]
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if kind == 'r' then
    if used + amount > limit then return {-1, i} end
  else
    local room = limit - used
    if room < min_tokens then return {-1, i} end
    local want = amount
    if grant ~= nil then want = grant end
    if room < want then want = room end
    grant = want
  end
end
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local amount = tonumber(ARGV[base + 2])
  local ttl = tonumber(ARGV[base + 3])
  local kind = ARGV[base + 4]
  if kind == 't' then amount = grant end
  redis.call('INCRBY', KEYS[i], amount)
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {grant or 0}
"""


class QuotaExceeded(Exception):
    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    scope: str  # "user", "key" or "model"
    ident: str
    kind: str  # "rpm" or "tpd"
    limit: int


@dataclass
class Reservation:
    token_keys: list[str]
    granted: int  # tokens reserved

    def settle(self, used: int) -> None:
        """Replace the reservation with what was really used."""
        delta = used - self.granted
        if delta and self.token_keys:
            pipe = redis_client().pipeline(transaction=False)
            for key in self.token_keys:
                pipe.incrby(key, delta)
            pipe.execute()
        self.granted = used


def _window(kind: str, now: float) -> tuple[str, int]:
    if kind == "rpm":
        minute = int(now // 60)
        return f"m{minute}", 60 - int(now % 60)
    day = int(now // 86400)
    return f"d{day}", 86400 - int(now % 86400)


def limits_for(*, user, api_key, model: str, spec_limits: tuple[int | None, int | None]) -> list[Limit]:
    user_rpm, user_tpd = settings.PARLEY_USER_RPM, settings.PARLEY_USER_TOKENS_PER_DAY
    limits = [Limit("user", str(user.pk), "rpm", user_rpm), Limit("user", str(user.pk), "tpd", user_tpd)]
    if api_key is not None:
        if api_key.rpm_limit:
            limits.append(Limit("key", str(api_key.pk), "rpm", api_key.rpm_limit))
        if api_key.tokens_per_day_limit:
            limits.append(Limit("key", str(api_key.pk), "tpd", api_key.tokens_per_day_limit))
    model_rpm, model_tpd = spec_limits
    if model_rpm:
        limits.append(Limit("model", f"{model}:{user.pk}", "rpm", model_rpm))
    if model_tpd:
        limits.append(Limit("model", f"{model}:{user.pk}", "tpd", model_tpd))
    return limits


_SCOPE_WORDS = {"user": "your account", "key": "this API key", "model": "this model"}


def quota_reserve(*, limits: list[Limit], tokens: int, min_tokens: int = 1) -> Reservation:
    """Count one request and reserve up to `tokens` tokens, or raise QuotaExceeded."""
    now = time.time()
    keys, args, token_keys = [], [], []
    for limit in limits:
        window, ttl = _window(limit.kind, now)
        key = f"parley:quota:{limit.scope}:{limit.ident}:{limit.kind}:{window}"
        is_tokens = limit.kind == "tpd"
        keys.append(key)
        args += [limit.limit, tokens if is_tokens else 1, ttl + 5, "t" if is_tokens else "r"]
        if is_tokens:
            token_keys.append(key)
    result = redis_client().eval(_RESERVE, len(keys), *keys, len(limits), max(min_tokens, 1) if tokens else 0, *args)
    if result[0] == -1:
        hit = limits[int(result[1]) - 1]
        _, retry_after = _window(hit.kind, now)
        what = "requests per minute" if hit.kind == "rpm" else "tokens per day"
        raise QuotaExceeded(
            f"Rate limit reached for {_SCOPE_WORDS[hit.scope]}: {hit.limit} {what}. "
            f"Try again in {retry_after} seconds.", retry_after=retry_after,
        )
    return Reservation(token_keys=token_keys, granted=int(result[0]))


def tokens_estimate(texts: list[str], *, overhead: int = 0) -> int:
    """A deliberately high estimate: about 3 characters a token, 8 per message, plus `overhead`
    (a chat template and its default system message add about 25)."""
    return sum(len(text) // 3 + 8 for text in texts) + overhead
