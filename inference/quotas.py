"""Requests-per-minute and tokens-per-day limits, enforced atomically in Redis.

A request reserves its worst case (prompt estimate + max_tokens) against every token budget
in one Lua script, which either admits it under all limits or changes nothing. The reservation
is settled to the real count when the request ends. Concurrent requests therefore cannot
overrun a budget: at most the prompt estimate's error of one request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.errors import ApplicationError
from common.redis_connection import redis_client

# KEYS: counters. ARGV: n, min_grant, then per counter: limit, amount, ttl, mode. Mode `f` (fixed)
# counters admit the whole amount or refuse (requests, audio seconds, characters); mode `g`
# (grantable) counters may admit less than asked, down to `min_grant`, so a nearly spent token
# budget still serves a shorter answer. All grantable counters get the same (smallest) grant.
# Returns {grant} or {-1, index, used} for the first limit hit; on a refusal nothing changes.
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
    if used + amount > limit then return {-1, i, used} end
  else
    local room = limit - used
    if room < min_grant then return {-1, i, used} end
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


# The plan field behind each user-scope limit kind, and how a voice limit converts.
PLAN_FIELDS = {"rpm": "requests_per_minute", "tpd": "tokens_per_day", "asd": "voice_minutes_per_day",
               "cpd": "speech_characters_per_day"}


class QuotaExceeded(ApplicationError):
    """A budget is spent: HTTP 429 with Retry-After, or an error frame. A plan's limit says so
    (`plan_limit`, with the limit, the use, when it resets and where to upgrade); an API key's or a
    model's is `rate_limit_exceeded`."""

    def __init__(self, message: str, *, retry_after: int, code: str = "rate_limit_exceeded",
                 details: dict | None = None):
        super().__init__(message, code=code, status=429, extra={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    scope: str  # "user", "key" or "model"
    ident: str
    kind: str  # a key of KINDS
    limit: int
    plan: object = field(default=None, compare=False)  # the plan a user-scope limit comes from


@dataclass
class Reservation:
    """What one request holds against its budgets until it settles to what it really used."""

    keys: dict[str, list[str]] = field(default_factory=dict)  # unit -> counter keys
    held: dict[str, int] = field(default_factory=dict)  # unit -> amount reserved
    settled: bool = False
    request_keys: list[str] = field(default_factory=list)  # the request counters it added one to

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

    def withdraw(self) -> None:
        """Undo the request altogether: nothing used, and it no longer counts as a request (a speculative
        reply the user never asked for, because they went on speaking). Only before it settled."""
        if self.settled:
            return
        self.settle(0)
        if self.request_keys:
            pipe = redis_client().pipeline(transaction=False)
            for key in self.request_keys:
                pipe.decr(key)
            pipe.execute()


def _window(kind: str, now: float) -> tuple[str, int]:
    if kind == "rpm":
        minute = int(now // 60)
        return f"m{minute}", 60 - int(now % 60)
    day = int(now // 86400)
    return f"d{day}", 86400 - int(now % 86400)


def limits_for(*, user, api_key, model: str, spec_limits: tuple[int | None, int | None], plan) -> list[Limit]:
    """Every limit one request counts against: the user's plan's, the API key's and the model's."""
    ident = str(user.pk)
    limits = [
        Limit("user", ident, "rpm", plan.requests_per_minute, plan),
        Limit("user", ident, "tpd", plan.tokens_per_day, plan),
        Limit("user", ident, "asd", plan.voice_minutes_per_day * 60, plan),
        Limit("user", ident, "cpd", plan.speech_characters_per_day, plan),
    ]
    if api_key is not None:
        if api_key.rpm_limit:
            limits.append(Limit("key", str(api_key.pk), "rpm", api_key.rpm_limit))
        if api_key.tokens_per_day_limit:
            limits.append(Limit("key", str(api_key.pk), "tpd", api_key.tokens_per_day_limit))
    model_rpm, model_tpd = spec_limits
    if model_rpm:
        limits.append(Limit("model", f"{model}:{ident}", "rpm", model_rpm))
    if model_tpd:
        limits.append(Limit("model", f"{model}:{ident}", "tpd", model_tpd))
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
        else:
            reservation.request_keys.append(key)
    if not keys:
        return reservation
    result = redis_client().eval(_RESERVE, len(keys), *keys, len(keys), max(min_tokens, 1) if tokens else 0, *args)
    if result[0] == -1:
        hit = used_limits[int(result[1]) - 1]
        _, retry_after = _window(hit.kind, now)
        if hit.plan is not None:
            raise plan_limit_exceeded(hit, used=int(result[2]), retry_after=retry_after, now=now)
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


def _wait_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} seconds"
    if seconds < 5400:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def plan_limit_exceeded(hit: Limit, *, used: int, retry_after: int, now: float) -> QuotaExceeded:
    """'You have used all 50,000 chat tokens per day of the Free plan…': the limit, the use, when it resets,
    and what lifts it."""
    from datetime import UTC, datetime

    plan = hit.plan
    name = PLAN_FIELDS[hit.kind]
    allowed = getattr(plan, name)
    unit = {"rpm": "requests per minute", "tpd": "chat tokens per day", "asd": "minutes of voice per day",
            "cpd": "characters of speech per day"}[hit.kind]
    shown_used = used // 60 if hit.kind == "asd" else used
    resets_at = datetime.fromtimestamp(now + retry_after, tz=UTC)
    upgrade = getattr(plan, "upgrade", None)
    lift = ""
    if upgrade is not None and getattr(upgrade, name) > allowed:
        lift = f" {upgrade.plan_name} includes {getattr(upgrade, name):,}: upgrade at {plan.upgrade_url}."
    message = (f"You have used {min(shown_used, allowed):,} of the {allowed:,} {unit} your {plan.plan_name} plan "
               f"includes. It resets in {_wait_words(retry_after)}.{lift}")
    return QuotaExceeded(message, retry_after=retry_after, code="plan_limit", details={
        "limit": name, "allowed": allowed, "used": shown_used, "resets_at": resets_at.isoformat(),
        "plan": plan.plan, "upgrade_url": getattr(plan, "upgrade_url", "") if upgrade is not None else "",
        "upgrade_plan": getattr(upgrade, "plan", None),
    })
