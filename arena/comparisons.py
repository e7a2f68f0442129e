"""Running a battle: both models' replies requested at once and read together, as one stream of frames.

Each side is an ordinary `inference.services.chat_stream`: the same access check, quota reservation,
worker queue and ledger row as a chat turn. Frames never name a model (the comparison is blind until the
vote): `delta` {side, text}, then per side `done` {side, ttft_ms, tokens_per_s, completion_tokens,
duration_ms, finish_reason} or `error` {side, message}, and last `answered` {status, error}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from accounts.models import User
from arena.models import Battle, BattleAnswer
from arena.services import battle_abandon, battle_answer_finish, battle_answer_streaming, battle_fail, battle_start
from common.errors import ApplicationError
from inference.services import Caller, ChatStream, chat_stream

logger = logging.getLogger(__name__)

# The same instructions for both sides, so the prompt is all that differs from a chat turn.
ARENA_SYSTEM_PROMPT = "You are a helpful assistant."
SIDES = ("a", "b")


def _blind(text: str, battle: Battle) -> str:
    """A message with the models' names replaced by their sides' labels."""
    return text.replace(battle.model_a, "Model A").replace(battle.model_b, "Model B")


@dataclass
class Comparison:
    battle: Battle
    streams: dict[str, ChatStream]
    started: float = field(default_factory=time.perf_counter)

    def close(self) -> None:
        """Settle both reservations and stop what still runs; unfinished answers are marked interrupted."""
        for stream in self.streams.values():
            stream.close()
        battle_abandon(battle_id=self.battle.pk)

    async def frames(self) -> AsyncIterator[dict]:
        queue: asyncio.Queue = asyncio.Queue()
        pumps = [asyncio.create_task(self._pump(side, stream, queue)) for side, stream in self.streams.items()]
        try:
            finished = 0
            while finished < len(pumps):
                frame = await queue.get()
                if frame["type"] in ("done", "error"):
                    finished += 1
                yield frame
            battle = await sync_to_async(Battle.objects.get, thread_sensitive=False)(pk=self.battle.pk)
            yield {"type": "answered", "status": battle.status, "error": battle.error}
        finally:
            for pump in pumps:
                pump.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pumps, return_exceptions=True)

    async def _pump(self, side: str, stream: ChatStream, queue: asyncio.Queue) -> None:
        try:
            await self._read(side, stream, queue)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The other side goes on, and this side's `error` ends the page's wait for it.
            logger.exception("arena: reading %s of battle %s failed", side, self.battle.pk)
            await queue.put({"type": "error", "side": side,
                             "message": "Something went wrong while reading this answer."})

    async def _read(self, side: str, stream: ChatStream, queue: asyncio.Queue) -> None:
        text, first, outcome = "", None, None
        try:
            async for event in stream:
                kind = event["event"]
                if kind == "delta":
                    if first is None:
                        first = time.perf_counter()
                    text += event["text"]
                    await queue.put({"type": "delta", "side": side, "text": event["text"]})
                elif kind in ("done", "error"):
                    outcome = event
        except asyncio.CancelledError:
            await asyncio.shield(self._finish(side, text, BattleAnswer.Status.INTERRUPTED, first, None,
                                              error="Stopped before the answer was complete."))
            raise
        if outcome is not None and outcome["event"] == "done":
            metrics = await self._finish(side, text, BattleAnswer.Status.DONE, first, outcome)
            await queue.put({"type": "done", "side": side, **metrics})
        else:
            error = _blind((outcome or {}).get("message") or "The model stopped answering.", self.battle)
            status = BattleAnswer.Status.INTERRUPTED if text else BattleAnswer.Status.FAILED
            await self._finish(side, text, status, first, outcome, error=error)
            await queue.put({"type": "error", "side": side, "message": error})

    async def _finish(self, side: str, text: str, status: str, first: float | None, done: dict | None,
                      error: str = "") -> dict:
        now = time.perf_counter()
        usage = (done or {}).get("usage", {}) if done and done.get("event") == "done" else {}
        tokens = int(usage.get("completion_tokens") or 0)
        decode_s = now - first if first else 0
        metrics = {
            "ttft_ms": round((first - self.started) * 1000, 1) if first else None,
            "tokens_per_s": round((tokens - 1) / decode_s, 1) if decode_s > 0 and tokens > 1 else None,
            "completion_tokens": tokens,
            "duration_ms": round((now - self.started) * 1000, 1),
            "finish_reason": (done or {}).get("finish_reason", "") or "",
        }
        await sync_to_async(battle_answer_finish, thread_sensitive=False)(
            battle_id=self.battle.pk, side=side, status=status, text=text, error=error,
            finish_reason=metrics["finish_reason"], usage=usage, ttft_ms=metrics["ttft_ms"],
            tokens_per_s=metrics["tokens_per_s"], duration_ms=metrics["duration_ms"])
        return metrics


def comparison_begin(*, battle: Battle, user: User) -> Comparison:
    """Claim a new battle and send its prompt to both models now. Raises ApplicationError: 409 for a battle
    already run, or the refusal of either request (a plan's limit, a model no longer allowed), which fails the
    battle; neither side's request then costs anything."""
    if not battle_start(battle=battle):
        raise ApplicationError("This comparison has already been run; reload the page to see its answers, or "
                               "start a new comparison.", code="already_started", status=409)
    caller = Caller(user=user)
    messages = [{"role": "system", "content": ARENA_SYSTEM_PROMPT}, {"role": "user", "content": battle.prompt}]
    streams: dict[str, ChatStream] = {}
    try:
        for side, model in zip(SIDES, (battle.model_a, battle.model_b), strict=True):
            streams[side] = chat_stream(caller=caller, model=model, messages=messages,
                                        max_tokens=battle.max_tokens, shrink_to_fit=True)
    except ApplicationError as exc:
        for stream in streams.values():
            stream.withdraw()
        message = _blind(exc.message, battle)
        battle_fail(battle=battle, reason=message)
        raise ApplicationError(message, code=exc.code, status=exc.status,
                               extra={k: v for k, v in exc.extra.items() if k != "model"}) from exc
    for side, stream in streams.items():
        battle_answer_streaming(battle_id=battle.pk, side=side, request_id=stream.request_id)
    return Comparison(battle=battle, streams=streams)
