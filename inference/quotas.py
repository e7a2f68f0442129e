"""Requests-per-minute and tokens-per-day limits, enforced atomically in Redis.

A request reserves its worst case (prompt estimate + max_tokens) against every token budget
in one Lua script, which either admits it under all limits or changes nothing. The reservation
is settled to the real count when the request ends. Concurrent requests therefore cannot
overrun a budget: at most the prompt estimate's error of one request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from django.conf import settings

from common.errors import ApplicationError
from common.redis_connection import redis_client

# KEYS: counters. ARGV: n, min_grant, then per counter: limit, amount, ttl, mode. Mode `f` (fixed)
# counters admit the whole amount or refuse (requests, audio seconds, characters); mode `g`
# (grantable) counters may admit less than asked, down to `min_grant`, so a nearly spent token
# budget still serves a shorter answer. All grantable counters get the same (smallest) grant.
# Returns {grant} or {-1, index} for the first limit hit; on a refusal nothing changes.
_RESERVE = """
local n = tonumber(ARGV[1])
local min_grant = tonumber(ARGV[2])
local grant = nil
for i = 1, n do
  local base = 2 + (i - 1) * 4
  local limit = tonumber(ARGV[base + 1])
  local amount = tonumber(ARGV[base + 2])
  local mode = ARGV[base + 4]
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if mode == 'f' then
    if used + amount > limit then return {-1, i} end
  else
    local room = limit - used
    if room < min_grant then return {-1, i} end
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
  local mode = ARGV[base + 4]
  if mode == 'g' then amount = grant end
  if amount ~= 0 then redis.call('INCRBY', KEYS[i], amount) end
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return {grant or 0}
"""

# What each limit kind counts, and how it reads in a message.
KINDS = {
    "rpm": ("requests", "requests per minute"),
    "tpd": ("tokens", "tokens per day"),
    "asd": ("audio_seconds", "seconds of audio per day"),
    "cpd": ("characters", "characters of speech per day"),
}


class QuotaExceeded(ApplicationError):
    """A budget is spent: HTTP 429 with Retry-After, or an error frame `rate_limited`."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, code="rate_limit_exceeded", status=429, extra={"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    scope: str  # "user", "key" or "model"
    ident: str
    kind: str  # a key of KINDS
    limit: int


@dataclass
class Reservation:
    """What one request holds against its budgets until it settles to what it really used."""

    keys: dict[str, list[str]] = field(default_factory=dict)  # unit -> counter keys
    held: dict[str, int] = field(default_factory=dict)  # unit -> amount reserved
    settled: bool = False

    @property
    def granted(self) -> int:
        """Tokens reserved (the most a chat reply's prompt plus answer may use)."""
        return self.held.get("tokens", 0)

    def settle(self, used: int | None = None, **used_by_unit: int) -> None:
        """Replace the reservation with real use: `settle(tokens)`, or by unit
        (`settle(audio_seconds=3)`). Units not named are released (settled to 0). Idempotent."""
        if self.settled:
            return
        self.settled = True
        if used is not None:
            used_by_unit["tokens"] = used
        pipe = redis_client().pipeline(transaction=False)
        changed = False
        for unit, keys in self.keys.items():
            delta = int(used_by_unit.get(unit, 0)) - self.held.get(unit, 0)
            if delta:
                changed = True
                for key in keys:
                    pipe.incrby(key, delta)
        if changed:
            pipe.execute()
        self.held = {unit: int(used_by_unit.get(unit, 0)) for unit in self.keys}


def _window(kind: str, now: float) -> tuple[str, int]:
    if kind == "rpm":
        minute = int(now // 60)
        return f"m{minute}", 60 - int(now % 60)
    day = int(now // 86400)
    return f"d{day}", 86400 - int(now % 86400)


def limits_for(*, user, api_key, model: str, spec_limits: tuple[int | None, int | None]) -> list[Limit]:
    """Every limit one request counts against: the user's, the API key's and the model's."""
    limits = [
        Limit("user", str(user.pk), "rpm", settings.PARLEY_USER_RPM),
        Limit("user", str(user.pk), "tpd", settings.PARLEY_USER_TOKENS_PER_DAY),
        Limit("user", str(user.pk), "asd", settings.PARLEY_USER_AUDIO_SECONDS_PER_DAY),
        Limit("user", str(user.pk), "cpd", settings.PARLEY_USER_SPEECH_CHARS_PER_DAY),
    ]
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


def quota_reserve(*, limits: list[Limit], tokens: int = 0, min_tokens: int = 1, audio_seconds: int = 0,
                  characters: int = 0, count_request: bool = True) -> Reservation:
    """Count one request and reserve what it may use, or raise QuotaExceeded and change nothing.

    Only the units the request uses are checked: a chat turn does not fail because the day's
    speech characters are spent, and a transcription does not touch the token budget.
    """
    now = time.time()
    amounts = {"requests": 1 if count_request else 0, "tokens": tokens, "audio_seconds": audio_seconds,
               "characters": characters}
    keys, args, used_limits = [], [], []
    reservation = Reservation()
    for limit in limits:
        unit = KINDS[limit.kind][0]
        amount = amounts[unit]
        if not amount:
            continue
        window, ttl = _window(limit.kind, now)
        key = f"parley:quota:{limit.scope}:{limit.ident}:{limit.kind}:{window}"
        keys.append(key)
        used_limits.append(limit)
        args += [limit.limit, amount, ttl + 5, "g" if unit == "tokens" else "f"]
        if unit != "requests":
            reservation.keys.setdefault(unit, []).append(key)
    if not keys:
        return reservation
    result = redis_client().eval(_RESERVE, len(keys), *keys, len(keys), max(min_tokens, 1) if tokens else 0, *args)
    if result[0] == -1:
        hit = used_limits[int(result[1]) - 1]
        _, retry_after = _window(hit.kind, now)
        raise QuotaExceeded(
            f"Rate limit reached for {_SCOPE_WORDS[hit.scope]}: {hit.limit} {KINDS[hit.kind][1]}. "
            f"Try again in {retry_after} seconds.", retry_after=retry_after,
        )
    for unit in reservation.keys:
        reservation.held[unit] = int(result[0]) if unit == "tokens" else amounts[unit]
    return reservation


def tokens_estimate(texts: list[str], *, overhead: int = 0) -> int:
    """A deliberately high estimate: about 3 characters a token, 8 per message, plus `overhead`
    (a chat template and its default system message add about 25)."""
    return sum(len(text) // 3 + 8 for text in texts) + overhead
