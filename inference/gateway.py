"""The web side of inference: send a job to the `gpu` queue and follow the route's fallback chain.

A spec that fails to load, times out, loses its worker or errors before any token was sent
is skipped for the next one in the chain; after tokens have reached the client, a failure is
reported as a clean error event instead. A circuit breaker in Redis skips a spec that keeps
failing for a cooldown, so every request does not pay for the same broken model.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis
from asgiref.sync import sync_to_async
from celery.exceptions import TimeoutError as CeleryTimeout
from channels.layers import get_channel_layer
from django.conf import settings

from common.heartbeat import worker_alive
from common.redis_connection import redis_client
from inference.streaming import cancel_set, request_group

logger = logging.getLogger(__name__)

BREAKER_FAILURES = 3
BREAKER_WINDOW_SECONDS = 60
BREAKER_COOLDOWN_SECONDS = 30


def breaker_open(spec: str) -> bool:
    return bool(redis_client().exists(f"parley:breaker:open:{spec}"))


def breaker_record(spec: str, *, ok: bool) -> None:
    client = redis_client()
    key = f"parley:breaker:fails:{spec}"
    if ok:
        client.delete(key)
        return
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, BREAKER_WINDOW_SECONDS)
    fails, _ = pipe.execute()
    if fails >= BREAKER_FAILURES:
        client.set(f"parley:breaker:open:{spec}", "1", ex=BREAKER_COOLDOWN_SECONDS)
        client.delete(key)
        logger.warning("circuit open for %s for %ss", spec, BREAKER_COOLDOWN_SECONDS)


def _candidates(specs: list[str]) -> list[str]:
    """Specs whose breaker is closed; if every one is open, try them all rather than fail outright."""
    closed = [spec for spec in specs if not breaker_open(spec)]
    return closed or specs


# Errors caused by the request itself: no other model would do better, and the client must change it.
CLIENT_ERRORS = {"context_length_exceeded", "wrong_task", "model_not_found", "invalid_audio"}


class GatewayError(Exception):
    def __init__(self, message: str, *, code: str, status: int = 503):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass
class Job:
    """What a task needs, minus the spec, which each attempt fills in."""

    request_id: str
    task: str
    user_id: int
    api_key_id: int | None
    route: str
    payload: dict
    attempts: list[dict] = field(default_factory=list)

    def for_spec(self, spec: str, attempt: int, group: str | None = None) -> dict:
        job_id = self.request_id if attempt == 0 else f"{self.request_id}-{attempt}"
        return {**self.payload, "job_id": job_id, "spec": spec, "attempt": attempt, "route": self.route,
                "user_id": self.user_id, "api_key_id": self.api_key_id, "group": group}


def request_id_new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


_TASKS = {
    "chat": "inference.tasks.generate",
    "embed": "inference.tasks.embed",
    "stt": "inference.tasks.transcribe",
    "tts": "inference.tasks.synthesize",
}


def run(job: Job, specs: list[str]) -> dict:
    """Run a non-streaming job through the chain; returns the first successful result."""
    from config.celery import app

    last_error = None
    for attempt, spec in enumerate(_candidates(specs)):
        payload = job.for_spec(spec, attempt)
        job.attempts.append({"spec": spec})
        try:
            result = app.send_task(_TASKS[job.task], args=[payload], queue=settings.PARLEY_GPU_QUEUE).get(
                timeout=settings.PARLEY_REQUEST_TIMEOUT, disable_sync_subtasks=False
            )
        except CeleryTimeout:
            cancel_set(payload["job_id"])
            result = {"ok": False, "code": "timeout", "message": f"{spec} did not answer in time.", "retryable": True}
        breaker_record(spec, ok=result["ok"] or not result.get("retryable", True))
        job.attempts[-1]["outcome"] = "ok" if result["ok"] else result["code"]
        if result["ok"]:
            return result
        if not result.get("retryable", True):
            raise GatewayError(result["message"], code=result["code"],
                               status=400 if result["code"] in CLIENT_ERRORS else 503)
        last_error = result
        logger.warning("%s failed for %s (%s); trying the next model", spec, job.request_id, result["code"])
    raise GatewayError(
        f"No model could serve this request: {last_error['message'] if last_error else 'all are unavailable'}",
        code=last_error["code"] if last_error else "unavailable",
    )


async def stream(job: Job, specs: list[str]) -> AsyncIterator[dict]:
    """Events for a streaming chat job: `delta`s, then `done` or `error`. Stops the job if abandoned."""
    from config.celery import app

    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = request_group(job.request_id)
    await layer.group_add(group, channel)
    inbox: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        # One long-lived reader: cancelling a channel-layer receive midway can lose a message.
        while True:
            try:
                message = await layer.receive(channel)
            except (OSError, ConnectionError, redis.RedisError):
                logger.warning("channel layer receive failed; retrying", exc_info=True)
                await asyncio.sleep(0.05)
                continue
            await inbox.put(message)

    reader = asyncio.create_task(read())
    current_job_id, finished, sent_tokens = None, False, False
    queue = settings.PARLEY_GPU_QUEUE
    send = sync_to_async(lambda payload: app.send_task(_TASKS["chat"], args=[payload], queue=queue),
                         thread_sensitive=False)
    try:
        last_error = None
        for attempt, spec in enumerate(await sync_to_async(_candidates, thread_sensitive=False)(specs)):
            payload = job.for_spec(spec, attempt, group)
            current_job_id = payload["job_id"]
            job.attempts.append({"spec": spec})
            await send(payload)
            worker, deadline = None, time.monotonic() + settings.PARLEY_FIRST_EVENT_TIMEOUT
            outcome = None
            while outcome is None:
                try:
                    message = await asyncio.wait_for(inbox.get(), timeout=2.0)
                except TimeoutError:
                    lost = worker is not None and not await sync_to_async(worker_alive, thread_sensitive=False)(worker)
                    if lost or (not sent_tokens and time.monotonic() > deadline):
                        code = "worker_lost" if lost else "timeout"
                        outcome = {"event": "error", "code": code, "retryable": True,
                                   "message": f"The worker serving {spec} stopped answering ({code})."}
                    continue
                if message.get("attempt") != attempt or message.get("type") != "inference.event":
                    continue  # a late message from an abandoned attempt
                event = message["event"]
                if event == "start":
                    worker = message["worker"]
                elif event == "delta":
                    sent_tokens = True
                    yield {"event": "delta", "text": message["text"], "spec": spec}
                else:
                    outcome = message
            job.attempts[-1]["outcome"] = "ok" if outcome["event"] == "done" else outcome["code"]
            if outcome["event"] == "done":
                await sync_to_async(breaker_record, thread_sensitive=False)(spec, ok=True)
                finished = True
                yield {**outcome, "spec": spec}
                return
            retryable = outcome.get("retryable", True)
            await sync_to_async(breaker_record, thread_sensitive=False)(spec, ok=not retryable)
            if sent_tokens or not retryable:
                finished = True
                yield {"event": "error", "code": outcome["code"], "message": outcome["message"], "spec": spec}
                return
            await sync_to_async(cancel_set, thread_sensitive=False)(current_job_id)
            last_error = outcome
        finished = True
        yield {"event": "error", "code": last_error["code"] if last_error else "unavailable",
               "message": "No model could serve this request: "
               + (last_error["message"] if last_error else "all are unavailable.")}
    finally:
        reader.cancel()
        if not finished and current_job_id:
            # The client went away mid-stream: stop the worker at its next token.
            await sync_to_async(cancel_set, thread_sensitive=False)(current_job_id)
        await layer.group_discard(group, channel)
