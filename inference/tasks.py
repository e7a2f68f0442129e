"""Tasks on the `gpu` queue. Each streams or returns its result and writes one usage row.

Inference tasks are acknowledged on receipt (acks_late=False): re-running a half-streamed
generation after a worker crash would send a second answer to a client that is gone; the
caller notices the lost worker and falls back or reports the error instead.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from celery import shared_task

from common.redis_connection import redis_client
from inference import control, gateway, worker  # noqa: F401 - registers the control command and worker hooks
from inference.backends import BackendError, GenerationRequest
from inference.repetition import RepetitionGuard
from inference.runtime import host
from inference.services import usage_record_create
from inference.streaming import CANCEL_PREFIX, COALESCE_SECONDS, event_publish, request_cancel_key

HOSTNAME = socket.gethostname()
# How often a stream looks at its cancel flag in Redis.
CANCEL_POLL_SECONDS = 0.05
OUTCOME_PREFIX = "parley:job:outcome:"
OUTCOME_TTL_SECONDS = 3600

logger = logging.getLogger(__name__)


def _worker_name(task) -> str:
    return getattr(task.request, "hostname", None) or HOSTNAME


def _backend(name: str):
    """The resident backend, reading the spec row only when it still has to be loaded."""
    return host.loaded(name) or host.get(worker.spec_config(name))


def _metering(job: dict) -> str:
    """How the plan counts this attempt's ledger row (inference.serving.METERING): the request's own kind on
    its first attempt; another model's attempt after a failed one is part of that request."""
    return "fallback" if job.get("attempt") else job.get("metering", "")


def _error(exc: Exception, job: dict) -> dict:
    """What the client is told. A BackendError's message is written for people; anything else is
    a bug whose text (paths, internals) stays in the worker log."""
    if isinstance(exc, BackendError):
        return {"ok": False, "code": exc.code, "message": exc.message, "retryable": exc.retryable}
    logger.exception("%s failed on %s (%s)", job.get("job_id"), job.get("spec"), exc.__class__.__name__)
    return {"ok": False, "code": "internal_error", "retryable": True,
            "message": "The model failed while serving this request; the worker log has the details."}


def _cancel_keys(job: dict) -> list[str]:
    return [CANCEL_PREFIX + job["job_id"], CANCEL_PREFIX + request_cancel_key(job.get("request_id", ""))]


def _canceled(job: dict) -> bool:
    """This attempt was cancelled (its client left, or the gateway moved on), or the whole request
    was (inference.services.job_cancel). Attempt 0's job id is the request id, so the request-wide
    flag has a key of its own: cancelling attempt 0 must not cancel the fallback after it."""
    return bool(redis_client().exists(*_cancel_keys(job)))


@contextmanager
def _claimed(job: dict, worker_name: str) -> Iterator[dict | None]:
    """Run the job only if no other attempt of its request runs and nobody cancelled it.

    Yields None when the job must not run, with the reason in the yielded-to caller's hands:
    the gateway cancelled it (start deadline missed) or another attempt holds the request.
    """
    if "request_id" not in job:  # a job from before claims existed
        yield {}
        return
    claimed, canceled = gateway.job_claim(job, worker_name, cancel_keys=_cancel_keys(job))
    if not claimed:
        logger.warning("%s skipped: another attempt of %s is running", job["job_id"], job["request_id"])
        yield None
        return
    try:
        yield None if canceled else {}
    finally:
        gateway.job_release(job, worker_name)


# Not retryable: whoever cancelled it (the client, or the gateway after a missed start deadline,
# which has moved on already) wants nothing more from this request.
_SKIPPED = {"ok": False, "code": "canceled_before_start", "retryable": False,
            "message": "The request was withdrawn before this model started it."}


def job_outcome_store(request_id: str, outcome: dict) -> None:
    """The last word on a chat job, kept for an hour: a web process that died mid-reply finishes
    its message from this (chat's stale-reply sweep)."""
    redis_client().set(OUTCOME_PREFIX + request_id, json.dumps(outcome), ex=OUTCOME_TTL_SECONDS)


@shared_task(name="inference.tasks.generate", bind=True, acks_late=False)
def generate(self, job: dict) -> dict:
    """Generate a chat reply for `job`; with job['events'], stream its events to that pub/sub channel."""
    started = time.perf_counter()
    events, attempt = job.get("events"), job.get("attempt", 0)
    worker_name = _worker_name(self)

    def emit(event: str, **data: object) -> None:
        if events:
            event_publish(events, {"type": "inference.event", "event": event, "attempt": attempt, **data})

    with _claimed(job, worker_name) as claim:
        if claim is None:
            emit("error", **{k: v for k, v in _SKIPPED.items() if k != "ok"})
            return dict(_SKIPPED)
        emit("start", worker=worker_name, spec=job["spec"])

        def emit_last(event: str, **data: object) -> None:
            # Release the claim before the final event: the gateway may start a fallback the moment
            # it reads an error, and that attempt must find the request free.
            if "request_id" in job:
                gateway.job_release(job, worker_name)
            emit(event, **data)

        return _generate(job, emit, emit_last, started, worker_name)


def _generate(job: dict, emit, emit_last, started: float, worker_name: str) -> dict:
    job_id = job["job_id"]
    # Checked just now, with the claim.
    canceled = {"flag": False, "checked": time.perf_counter(), "repeating": False}

    def is_canceled() -> bool:
        # Asked by the backend per step and while the request waits for a slot: look at Redis at
        # most every CANCEL_POLL_SECONDS, so a request cancelled in line leaves the line.
        now = time.perf_counter()
        if not canceled["flag"] and now - canceled["checked"] > CANCEL_POLL_SECONDS:
            canceled["checked"] = now
            canceled["flag"] = _canceled(job)
        return canceled["flag"]

    text_parts: list[str] = []
    guard = RepetitionGuard()
    ttft_ms, finish, prompt_tokens, completion_tokens, processed = None, None, 0, 0, None
    last_position = {"value": None}

    def on_queued(position: int) -> None:
        if position != last_position["value"]:
            last_position["value"] = position
            emit("queued", position=position)

    try:
        backend = _backend(job["spec"])
        params = getattr(getattr(backend, "spec", None), "params", {}) or {}
        request = GenerationRequest(
            messages=job["messages"], max_tokens=job["max_tokens"], temperature=job.get("temperature", 0.7),
            top_p=job.get("top_p", 1.0), stop=job.get("stop") or [], is_canceled=is_canceled,
            on_queued=on_queued, repeat_penalty=params.get("repeat_penalty"),
        )
        buffer, last_sent = "", 0.0
        # The engine's own time to the first token (slot wait included), as a bare backend would see it:
        # the bench takes it from the TTFT a client sees to get Parley's own overhead, request by request.
        engine_started, engine_ttft_ms = time.perf_counter(), None
        for chunk in backend.generate(request):
            now = time.perf_counter()
            is_canceled()
            if chunk.text:
                text_parts.append(chunk.text)
                if guard.push(chunk.text) and not canceled["repeating"]:
                    canceled["flag"] = canceled["repeating"] = True
                if ttft_ms is None:
                    ttft_ms = (now - started) * 1000
                    engine_ttft_ms = (now - engine_started) * 1000
                    emit("delta", text=chunk.text)  # the first delta goes out at once
                    last_sent = now
                else:
                    buffer += chunk.text
                    if now - last_sent >= COALESCE_SECONDS:
                        emit("delta", text=buffer)
                        buffer, last_sent = "", now
            if chunk.finish_reason:
                finish = chunk.finish_reason
                prompt_tokens, completion_tokens = chunk.prompt_tokens, chunk.completion_tokens
                processed = chunk.prompt_tokens_processed
        if buffer:
            emit("delta", text=buffer)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error event; the worker lives on
        result = _error(exc, job)
        job_outcome_store(job.get("request_id", job_id), {
            "status": "error", "text": "".join(text_parts), "code": result["code"], "message": result["message"],
            "spec": job["spec"], "usage": {}})
        emit_last("error", **{k: v for k, v in result.items() if k != "ok"}, tokens_sent=bool(text_parts))
        usage_record_create(
            request_id=job_id, user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
            route_alias=job.get("route", ""), task="chat", completion_tokens=len(text_parts),
            duration_ms=(time.perf_counter() - started) * 1000, ttft_ms=ttft_ms, outcome="error",
            error=result["message"], worker=worker_name, metering=_metering(job),
        )
        return result
    if canceled["repeating"]:
        finish = "repetition"
    duration_ms = (time.perf_counter() - started) * 1000
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if processed is not None:
        usage["prompt_tokens_processed"] = processed
    text = "".join(text_parts)
    job_outcome_store(job.get("request_id", job_id), {
        "status": "done", "text": text, "finish_reason": finish or "stop", "spec": job["spec"], "usage": usage,
        "ttft_ms": ttft_ms, "engine_ttft_ms": engine_ttft_ms})
    emit_last("done", finish_reason=finish or "stop", usage=usage, spec=job["spec"], ttft_ms=ttft_ms,
              duration_ms=duration_ms)
    usage_record_create(
        request_id=job_id, user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="chat", prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, ttft_ms=ttft_ms, duration_ms=duration_ms,
        outcome="canceled" if finish == "canceled" else "ok", worker=worker_name,
        metering=_metering(job),
    )
    return {"ok": True, "text": text, "finish_reason": finish or "stop", "usage": usage,
            "spec": job["spec"], "ttft_ms": ttft_ms}


@shared_task(name="inference.tasks.embed", bind=True, acks_late=False)
def embed(self, job: dict) -> dict:
    with _claimed(job, _worker_name(self)) as claim:
        return dict(_SKIPPED) if claim is None else _embed(self, job)


def _embed(self, job: dict) -> dict:
    started = time.perf_counter()
    try:
        backend = _backend(job["spec"])
        vectors, tokens = backend.embed(job["input"])
    except Exception as exc:  # noqa: BLE001
        return _error(exc, job)
    usage_record_create(
        request_id=job["job_id"], user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="embed", prompt_tokens=tokens,
        duration_ms=(time.perf_counter() - started) * 1000, worker=_worker_name(self),
        metering=_metering(job),
    )
    # float32 little-endian, base64: compact in the result backend, and exactly OpenAI's base64 format.
    encoded = [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
    return {"ok": True, "embeddings": encoded, "prompt_tokens": tokens, "spec": job["spec"]}


@shared_task(name="inference.tasks.transcribe", bind=True, acks_late=False)
def transcribe(self, job: dict) -> dict:
    """job['audio'] is base64 PCM16 mono at 16 kHz (the web process decoded and checked it)."""
    with _claimed(job, _worker_name(self)) as claim:
        return dict(_SKIPPED) if claim is None else _transcribe(self, job)


def _transcribe(self, job: dict) -> dict:
    started = time.perf_counter()
    try:
        audio = np.frombuffer(base64.b64decode(job["audio"]), dtype=np.int16)
        backend = _backend(job["spec"])
        result = backend.transcribe(audio, language=job.get("language") or None, prompt=job.get("prompt") or None)
    except Exception as exc:  # noqa: BLE001
        return _error(exc, job)
    seconds = len(audio) / 16000
    usage_record_create(
        request_id=job["job_id"], user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        # A partial transcript of speech still going on is a preview: the final one bills the audio once.
        route_alias=job.get("route", ""), task="stt",
        audio_seconds=0 if job.get("preview") else max(seconds, float(job.get("bill_seconds") or 0)),
        duration_ms=(time.perf_counter() - started) * 1000, worker=_worker_name(self),
        metering=_metering(job),
    )
    return {"ok": True, "text": result.text, "language": result.language, "duration": seconds,
            "segments": result.segments, "spec": job["spec"]}


@shared_task(name="inference.tasks.synthesize", bind=True, acks_late=False)
def synthesize(self, job: dict) -> dict:
    """Speech for job['input'] as base64 PCM16 mono; with job['events'], each sentence is streamed too."""
    with _claimed(job, _worker_name(self)) as claim:
        return dict(_SKIPPED) if claim is None else _synthesize(self, job)


def _synthesize(self, job: dict) -> dict:
    started = time.perf_counter()
    events = job.get("events")
    try:
        backend = _backend(job["spec"])
        rate = backend.sample_rate
        chunks, first_ms = [], None
        for pcm in backend.synthesize(job["input"], speed=float(job.get("speed", 1.0))):
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000
            chunks.append(pcm)
            if events:
                event_publish(events, {"type": "inference.audio", "sample_rate": rate,
                                       "audio": base64.b64encode(pcm).decode()})
    except Exception as exc:  # noqa: BLE001
        return _error(exc, job)
    audio = b"".join(chunks)
    usage_record_create(
        request_id=job["job_id"], user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="tts", characters=len(job["input"]), ttft_ms=first_ms,
        duration_ms=(time.perf_counter() - started) * 1000, worker=_worker_name(self),
        metering=_metering(job),
    )
    return {"ok": True, "audio": base64.b64encode(audio).decode(), "sample_rate": rate, "spec": job["spec"],
            "first_chunk_ms": first_ms}


# Not "inference.tasks.*" (those go to the gpu queue): installing downloads and joins files, work for the
# default queue's workers, while the gpu workers keep serving.
@shared_task(name="inference.model_install", acks_late=True)
def model_install(name: str) -> str:
    """Install a bundled model in the background (inference.services.model_install_run). Safe to run twice:
    every step is a checksummed cache that a second run finds complete."""
    from inference.services import model_install_run

    return model_install_run(name=name).install_state
