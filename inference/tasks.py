"""Tasks on the `gpu` queue. Each streams or returns its result and writes one usage row.

Inference tasks are acknowledged on receipt (acks_late=False): re-running a half-streamed
generation after a worker crash would send a second answer to a client that is gone; the
caller notices the lost worker and falls back or reports the error instead.
"""

from __future__ import annotations

import base64
import socket
import time

import numpy as np
from celery import shared_task

from inference import control, worker  # noqa: F401 - registers the control command and worker hooks
from inference.backends import BackendError, GenerationRequest
from inference.runtime import host
from inference.services import usage_record_create
from inference.streaming import COALESCE_SECONDS, cancel_requested, publisher

HOSTNAME = socket.gethostname()
# How often a stream looks at its cancel flag in Redis.
CANCEL_POLL_SECONDS = 0.05


def _worker_name(task) -> str:
    return getattr(task.request, "hostname", None) or HOSTNAME


def _backend(name: str):
    """The resident backend, reading the spec row only when it still has to be loaded."""
    return host.loaded(name) or host.get(worker.spec_config(name))


def _error(exc: Exception) -> dict:
    if isinstance(exc, BackendError):
        return {"ok": False, "code": exc.code, "message": exc.message, "retryable": exc.retryable}
    return {"ok": False, "code": "internal_error", "message": f"{exc.__class__.__name__}: {exc}", "retryable": True}


@shared_task(name="inference.tasks.generate", bind=True, acks_late=False)
def generate(self, job: dict) -> dict:
    """Generate a chat reply for `job`; with job['group'], stream deltas to that Channels group."""
    started = time.perf_counter()
    group, job_id, attempt = job.get("group"), job["job_id"], job.get("attempt", 0)
    worker_name = _worker_name(self)

    def emit(event: str, **data: object) -> None:
        if group:
            publisher.send(group, {"type": "inference.event", "event": event, "attempt": attempt, **data})

    if group and cancel_requested(job_id):
        # Stopped before a worker got to it (e.g. the user pressed stop at once): skip the prefill.
        emit("done", finish_reason="canceled", usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
             spec=job["spec"], ttft_ms=None, duration_ms=0)
        return {"ok": True, "text": "", "finish_reason": "canceled", "spec": job["spec"], "ttft_ms": None,
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
    emit("start", worker=worker_name, spec=job["spec"])
    canceled = {"flag": False, "checked": 0.0}

    def is_canceled() -> bool:
        return canceled["flag"]

    text_parts: list[str] = []
    ttft_ms, finish, prompt_tokens, completion_tokens = None, None, 0, 0
    try:
        backend = _backend(job["spec"])
        request = GenerationRequest(
            messages=job["messages"], max_tokens=job["max_tokens"], temperature=job.get("temperature", 0.7),
            top_p=job.get("top_p", 1.0), stop=job.get("stop") or [], is_canceled=is_canceled,
        )
        buffer, last_sent = "", 0.0
        for chunk in backend.generate(request):
            now = time.perf_counter()
            if now - canceled["checked"] > CANCEL_POLL_SECONDS:
                canceled["checked"] = now
                canceled["flag"] = canceled["flag"] or cancel_requested(job_id)
            if chunk.text:
                text_parts.append(chunk.text)
                if ttft_ms is None:
                    ttft_ms = (now - started) * 1000
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
        if buffer:
            emit("delta", text=buffer)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error event; the worker lives on
        result = _error(exc)
        emit("error", **{k: v for k, v in result.items() if k != "ok"}, tokens_sent=bool(text_parts))
        usage_record_create(
            request_id=job_id, user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
            route_alias=job.get("route", ""), task="chat", completion_tokens=len(text_parts),
            duration_ms=(time.perf_counter() - started) * 1000, ttft_ms=ttft_ms, outcome="error",
            error=result["message"], worker=worker_name,
        )
        return result
    duration_ms = (time.perf_counter() - started) * 1000
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    emit("done", finish_reason=finish or "stop", usage=usage, spec=job["spec"], ttft_ms=ttft_ms,
         duration_ms=duration_ms)
    usage_record_create(
        request_id=job_id, user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="chat", prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, ttft_ms=ttft_ms, duration_ms=duration_ms,
        outcome="canceled" if finish == "canceled" else "ok", worker=worker_name,
    )
    return {"ok": True, "text": "".join(text_parts), "finish_reason": finish or "stop", "usage": usage,
            "spec": job["spec"], "ttft_ms": ttft_ms}


@shared_task(name="inference.tasks.embed", bind=True, acks_late=False)
def embed(self, job: dict) -> dict:
    started = time.perf_counter()
    try:
        backend = _backend(job["spec"])
        vectors, tokens = backend.embed(job["input"])
    except Exception as exc:  # noqa: BLE001
        return _error(exc)
    usage_record_create(
        request_id=job["job_id"], user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="embed", prompt_tokens=tokens,
        duration_ms=(time.perf_counter() - started) * 1000, worker=_worker_name(self),
    )
    # float32 little-endian, base64: compact in the result backend, and exactly OpenAI's base64 format.
    encoded = [base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode() for v in vectors]
    return {"ok": True, "embeddings": encoded, "prompt_tokens": tokens, "spec": job["spec"]}


@shared_task(name="inference.tasks.transcribe", bind=True, acks_late=False)
def transcribe(self, job: dict) -> dict:
    """job['audio'] is base64 PCM16 mono at 16 kHz (the web process decoded and checked it)."""
    started = time.perf_counter()
    try:
        audio = np.frombuffer(base64.b64decode(job["audio"]), dtype=np.int16)
        backend = _backend(job["spec"])
        result = backend.transcribe(audio, language=job.get("language") or None, prompt=job.get("prompt") or None)
    except Exception as exc:  # noqa: BLE001
        return _error(exc)
    seconds = len(audio) / 16000
    usage_record_create(
        request_id=job["job_id"], user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="stt", audio_seconds=seconds,
        duration_ms=(time.perf_counter() - started) * 1000, worker=_worker_name(self),
    )
    return {"ok": True, "text": result.text, "language": result.language, "duration": seconds,
            "segments": result.segments, "spec": job["spec"]}


@shared_task(name="inference.tasks.synthesize", bind=True, acks_late=False)
def synthesize(self, job: dict) -> dict:
    """Speech for job['input'] as base64 PCM16 mono; with job['group'], each sentence is streamed too."""
    started = time.perf_counter()
    group = job.get("group")
    try:
        backend = _backend(job["spec"])
        rate = backend.sample_rate
        chunks, first_ms = [], None
        for pcm in backend.synthesize(job["input"], speed=float(job.get("speed", 1.0))):
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000
            chunks.append(pcm)
            if group:
                publisher.send(group, {"type": "inference.audio", "sample_rate": rate,
                                       "audio": base64.b64encode(pcm).decode()})
    except Exception as exc:  # noqa: BLE001
        return _error(exc)
    audio = b"".join(chunks)
    usage_record_create(
        request_id=job["job_id"], user_id=job["user_id"], api_key_id=job.get("api_key_id"), spec_name=job["spec"],
        route_alias=job.get("route", ""), task="tts", characters=len(job["input"]), ttft_ms=first_ms,
        duration_ms=(time.perf_counter() - started) * 1000, worker=_worker_name(self),
    )
    return {"ok": True, "audio": base64.b64encode(audio).decode(), "sample_rate": rate, "spec": job["spec"],
            "first_chunk_ms": first_ms}
