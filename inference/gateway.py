"""The web side of inference: send a job to a worker that holds its model, follow the fallback chain.

Inside inference only: other apps call `inference.services` (the public face), never this module.

Rules, in the order a job meets them:
1. **Where it goes.** A job goes to `<gpu queue>.<spec>`, the queue of the workers whose heartbeat
   says they hold (or are loading) the model. When no live worker holds it, it goes to the shared
   gpu queue (any worker loads it on first use) if PARLEY_LAZY_LOAD is on; otherwise the next
   model is tried at once.
2. **Starting.** A worker *claims* a job (SET NX on the request's run key) before it touches the
   model, so the same request never runs on two models at once. A job nobody claims within the
   start deadline is cancelled, and only then is the next model tried. Waiting in line on a
   worker that claimed it is not a failure: the worker reports `queued` with the position.
3. **Falling back.** On an error, a failed load, a lost worker or a missed start deadline, and
   only before any token reached the client. After that a failure is an error event. A circuit
   breaker in Redis skips a model that keeps failing for a cooldown.
4. **Telling.** Every outcome names the model that answered and, for a fallback, why the models
   before it did not (`fallback_reason`).
5. **Cancelling.** A request whose client goes away (stream closed, or the ASGI request aborted:
   see `jobs_tracked`) sets the cancel flag the worker checks per token. An overall timeout
   cancels the running job and waits for it to stop before any fallback starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from common.errors import ApplicationError
from common.heartbeat import worker_alive, workers_alive
from common.redis_connection import redis_client
from inference.streaming import cancel_set, events_read, request_events_channel

logger = logging.getLogger(__name__)

BREAKER_FAILURES = 3
BREAKER_WINDOW_SECONDS = 60
BREAKER_COOLDOWN_SECONDS = 30
RUN_KEY_PREFIX = "parley:job:run:"
RUN_KEY_TTL_SECONDS = 3600
# After cancelling a running job, how long to wait for it to stop before the next model starts.
CANCEL_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.25
LIVENESS_EVERY_SECONDS = 2.0


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


# Models passed over without sending them a job: they use no attempt number.
SKIPPED_CODES = frozenset({"breaker_open", "installing", "not_installed"})

# Errors caused by the request itself: no other model would do better, and the client must change it.
CLIENT_ERRORS = {"context_length_exceeded", "wrong_task", "model_not_found", "invalid_audio", "invalid_request"}

# How a skipped model reads in "answered by B because A …".
_REASONS = {
    "load_failed": "failed to load",
    "checksum_mismatch": "failed its checksum",
    "model_unloaded": "was unloaded",
    "timeout": "did not start in time",
    "request_timeout": "took too long",
    "worker_lost": "lost its worker",
    "not_loaded": "is not loaded on any worker",
    "breaker_open": "kept failing and is paused",
    "installing": "is still being installed",
    "not_installed": "could not be installed here",
    "upstream_error": "could not reach its upstream server",
}


def spec_label(name: str) -> str:
    """A model's name as people read it: the start of its description ("Qwen2.5-Coder 0.5B Instruct")."""
    from inference.selectors import spec_get

    spec = spec_get(name=name)
    description = spec.description if spec is not None else ""
    label = description.split(":")[0].split(",")[0].strip()
    return label or name


def spec_engine(name: str) -> str:
    """"upstream" for a model served by another API, "local" for one this deployment runs."""
    from inference.models import ModelSpec
    from inference.selectors import spec_get

    spec = spec_get(name=name)
    return "upstream" if spec is not None and spec.backend == ModelSpec.Backend.OPENAI_UPSTREAM else "local"


def fallback_reason(failures: list[dict]) -> str:
    """'Qwen 0.5B failed to load' for the models tried before the one that answered."""
    parts = [f"{failure['label']} {_REASONS.get(failure['code'], 'failed (' + failure['code'] + ')')}"
             for failure in failures]
    return "; ".join(parts)


class GatewayError(ApplicationError):
    def __init__(self, message: str, *, code: str, status: int = 503):
        super().__init__(message, code=code, status=status)


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

    def for_spec(self, spec: str, attempt: int, events: str | None = None) -> dict:
        job_id = self.request_id if attempt == 0 else f"{self.request_id}-{attempt}"
        return {**self.payload, "job_id": job_id, "request_id": self.request_id, "spec": spec, "attempt": attempt,
                "route": self.route, "user_id": self.user_id, "api_key_id": self.api_key_id, "events": events}

    def skip(self, spec: str, label: str, code: str) -> None:
        """Note a model passed over before any job was sent (a fallback reason for the one that answers)."""
        self.attempts.append({"spec": spec, "label": label, "outcome": code, "code": code})

    def failures(self) -> list[dict]:
        return [a for a in self.attempts if a.get("outcome") not in (None, "ok")]

    def answered(self, spec: str) -> dict:
        """What an outcome says about who answered: the model, whether it was a fallback, and why."""
        failures = self.failures()
        return {"spec": spec, "model_label": spec_label(spec), "engine": spec_engine(spec), "fallback": bool(failures),
                "fallback_reason": fallback_reason(failures) if failures else ""}


def request_id_new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


_TASKS = {
    "chat": "inference.tasks.generate",
    "embed": "inference.tasks.embed",
    "stt": "inference.tasks.transcribe",
    "tts": "inference.tasks.synthesize",
}

# ----------------------------------------------------------------------------- claims and queues


def model_queue(spec: str) -> str:
    """The queue of the workers holding `spec` (they subscribe when the model is loaded)."""
    return f"{settings.PARLEY_GPU_QUEUE}.{spec}"


def queue_for(spec: str) -> str | None:
    """Where a job for `spec` goes now, or None when no worker can take it."""
    # Only workers that serve this deployment's gpu queue (a test or a canary may run others).
    workers = [w for w in workers_alive() if settings.PARLEY_GPU_QUEUE in w.get("queues", [])]
    for worker in workers:
        state = (worker.get("models") or {}).get(spec, {}).get("state")
        if state in ("loaded", "loading"):
            return model_queue(spec)
    if settings.PARLEY_LAZY_LOAD and workers:
        return settings.PARLEY_GPU_QUEUE
    return None


def run_key(request_id: str) -> str:
    return RUN_KEY_PREFIX + request_id


def run_holder(request_id: str) -> tuple[int, str] | None:
    """(attempt, worker) of the attempt that claimed the request, if one did."""
    raw = redis_client().get(run_key(request_id))
    if not raw:
        return None
    attempt, _, worker = (raw.decode() if isinstance(raw, bytes) else raw).partition("|")
    return int(attempt), worker


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def job_claim(job: dict, worker: str, *, cancel_keys: list[str] = ()) -> tuple[bool, bool]:
    """A worker's claim on a request (at most one attempt of a request runs at a time), and whether any
    of `cancel_keys` is set, in one round trip: (claimed, canceled)."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(run_key(job["request_id"]), f"{job['attempt']}|{worker}", nx=True, ex=RUN_KEY_TTL_SECONDS)
    if cancel_keys:
        pipe.exists(*cancel_keys)
    claimed, *canceled = pipe.execute()
    return bool(claimed), bool(canceled and canceled[0])


def job_release(job: dict, worker: str) -> None:
    redis_client().eval(_RELEASE, 1, run_key(job["request_id"]), f"{job['attempt']}|{worker}")


def _release_dead(request_id: str, attempt: int) -> None:
    """A lost worker cannot release its claim; clear it so the next attempt can start."""
    holder = run_holder(request_id)
    if holder and holder[0] == attempt:
        redis_client().eval(_RELEASE, 1, run_key(request_id), f"{holder[0]}|{holder[1]}")


# ----------------------------------------------------------------------------- disconnects

class TrackedJobs(list):
    """The job ids a request started; once `aborted` (its client left), a job started later is
    cancelled as soon as it is sent (a sync view thread keeps running after the disconnect)."""

    aborted: bool = False


_tracked: contextvars.ContextVar[TrackedJobs | None] = contextvars.ContextVar("parley_tracked_jobs", default=None)


@contextmanager
def jobs_tracked() -> Iterator[TrackedJobs]:
    """Collect the job ids started in this context (a request), so an aborted request can cancel them.

    The list is shared with copies of the context, so jobs started by a sync view running in a
    thread (sync_to_async copies the context) are seen by the ASGI middleware that owns it.
    """
    jobs = TrackedJobs()
    token = _tracked.set(jobs)
    try:
        yield jobs
    finally:
        _tracked.reset(token)


def _track(job_id: str) -> None:
    jobs = _tracked.get()
    if jobs is not None:
        jobs.append(job_id)
        if jobs.aborted:  # the client left before this job was sent: it must not run for nobody
            cancel_set(job_id)


def jobs_cancel(job_ids: list[str]) -> None:
    for job_id in job_ids:
        cancel_set(job_id)


# ----------------------------------------------------------------------------- running


def _candidates(job: Job, specs: list[str]) -> list[str]:
    """Specs whose breaker is closed (skipped ones are noted as failures); all if every one is open."""
    closed = [spec for spec in specs if not breaker_open(spec)]
    if not closed:
        return specs
    for spec in specs:
        if spec not in closed:
            job.skip(spec, spec_label(spec), "breaker_open")
    return closed


def _failed(job: Job, spec: str, code: str) -> None:
    job.attempts[-1].update(outcome=code, code=code)
    logger.warning("%s failed for %s (%s); trying the next model", spec, job.request_id, code)


def _no_model(job: Job, last: dict | None) -> GatewayError:
    if last is None:
        return GatewayError("No model could serve this request: none of them is available.", code="unavailable")
    return GatewayError(f"No model could serve this request: {last['message']}", code=last["code"])


def run(job: Job, specs: list[str]) -> dict:
    """Run a non-streaming job through the chain; returns the first successful result, with who answered."""
    from config.celery import app

    last_error = None
    candidates = _candidates(job, specs)
    for spec in candidates:
        attempt = len([a for a in job.attempts if a.get("code") not in SKIPPED_CODES])
        payload = job.for_spec(spec, attempt)
        job.attempts.append({"spec": spec, "label": spec_label(spec)})
        queue = queue_for(spec)
        if queue is None:
            _failed(job, spec, "not_loaded")
            last_error = {"code": "not_loaded", "message": f"{spec_label(spec)} is not loaded on any worker."}
            continue
        _track(payload["job_id"])
        pending = app.send_task(_TASKS[job.task], args=[payload], queue=queue)
        result = _wait(pending, job, payload, spec)
        breaker_record(spec, ok=result["ok"] or not result.get("retryable", True))
        if result["ok"]:
            job.attempts[-1]["outcome"] = "ok"
            return {**result, **job.answered(spec)}
        _failed(job, spec, result["code"])
        if not result.get("retryable", True):
            raise GatewayError(result["message"], code=result["code"],
                               status=400 if result["code"] in CLIENT_ERRORS else 503)
        last_error = result
    raise _no_model(job, last_error)


def _missed_start(label: str) -> dict:
    return {"ok": False, "code": "timeout", "retryable": True,
            "message": f"{label} did not start within {settings.PARLEY_START_TIMEOUT:.0f} s."}


def _wait(pending, job: Job, payload: dict, spec: str) -> dict:
    """The task's result, or an error dict for a missed start, a lost worker or a timeout."""
    sent = time.monotonic()
    started, worker, checked, withdrawn = False, None, 0.0, False
    while True:
        try:
            result = pending.get(timeout=POLL_SECONDS, disable_sync_subtasks=False)
            if withdrawn and result.get("code") == "canceled_before_start":
                return _missed_start(spec_label(spec))  # we withdrew it at the deadline, just as it was claimed
            return result
        except CeleryTimeout:
            pass
        now = time.monotonic()
        if now - checked < LIVENESS_EVERY_SECONDS and started:
            continue
        checked = now
        holder = run_holder(job.request_id)
        if holder and holder[0] == payload["attempt"]:
            started, worker = True, holder[1]
        if not started and now - sent > settings.PARLEY_START_TIMEOUT:
            cancel_set(payload["job_id"])
            holder = run_holder(job.request_id)
            if holder and holder[0] == payload["attempt"]:
                # Claimed just now: the worker sees the cancel and says so; then the next model starts.
                started, worker, withdrawn = True, holder[1], True
                continue
            return _missed_start(spec_label(spec))
        if started and worker and not worker_alive(worker):
            _release_dead(job.request_id, payload["attempt"])
            return {"ok": False, "code": "worker_lost", "retryable": True,
                    "message": f"The worker serving {spec_label(spec)} stopped answering."}
        if now - sent > settings.PARLEY_REQUEST_TIMEOUT:
            cancel_set(payload["job_id"])
            try:  # let it stop before anything else starts
                pending.get(timeout=CANCEL_GRACE_SECONDS, disable_sync_subtasks=False)
            except CeleryTimeout:
                pass
            return {"ok": False, "code": "request_timeout", "retryable": False,
                    "message": f"{spec_label(spec)} did not finish within {settings.PARLEY_REQUEST_TIMEOUT:.0f} s."}


@dataclass
class StreamStart:
    """A streaming job's first attempt, already sent (stream_begin): its candidates and what the attempt said."""

    candidates: list[str]
    first: tuple | None  # (payload, label, queue or None, answered) for candidates[0]


def stream_begin(job: Job, specs: list[str]) -> StreamStart:
    """Send a streaming chat job's first attempt now, from the caller's thread. Its events wait in the
    request's list until `stream` reads them, so the job's trip to a worker overlaps whatever the caller
    does before it starts reading (answering the HTTP request, storing the reply's row)."""
    candidates = _candidates(job, specs)
    channel = request_events_channel(job.request_id)
    first = _attempt_start(job, candidates[0], channel) if candidates else None
    return StreamStart(candidates=candidates, first=first)


async def stream(job: Job, start: StreamStart) -> AsyncIterator[dict]:
    """Events for a streaming chat job begun with `stream_begin`: `queued`, `fallback`, `delta`s, then `done`
    or `error`. Closing the iterator early (the client went away) cancels the job at the worker's next token.
    """
    channel = request_events_channel(job.request_id)
    async with events_read(channel) as inbox, \
            contextlib.aclosing(_stream_attempts(job, start, channel, inbox)) as events:
        async for event in events:
            yield event


def off_loop(func):
    return sync_to_async(func, thread_sensitive=False)


async def _stream_attempts(job: Job, start: StreamStart, channel: str, inbox: asyncio.Queue
                           ) -> AsyncIterator[dict]:
    current_job_id, finished, sent_tokens = None, False, False
    try:
        last_error = None
        for index, spec in enumerate(start.candidates):
            if index == 0:
                payload, label, queue, answered = start.first
            else:
                payload, label, queue, answered = await off_loop(_attempt_start)(job, spec, channel)
            if queue is not None:
                current_job_id = payload["job_id"]
            if answered is not None:
                yield {"event": "fallback", **answered}
            if queue is None:
                _failed(job, spec, "not_loaded")
                last_error = {"code": "not_loaded", "message": f"{label} is not loaded on any worker."}
                continue
            outcome = None
            async for event in _attempt_events(inbox, payload, spec, label, job):
                if event["event"] == "delta":
                    sent_tokens = True
                    yield {"event": "delta", "text": event["text"], "spec": spec}
                elif event["event"] == "queued":
                    yield {"event": "queued", "position": event["position"], "spec": spec}
                else:
                    outcome = event
            if outcome["event"] == "done":
                finished = True
                yield {**outcome, **await off_loop(_attempt_ok)(job, spec)}
                return
            retryable = outcome.get("retryable", True)
            await off_loop(breaker_record)(spec, ok=not retryable)
            _failed(job, spec, outcome["code"])
            if sent_tokens or not retryable:
                finished = True
                yield {"event": "error", "code": outcome["code"], "message": outcome["message"], "spec": spec}
                return
            await off_loop(cancel_set)(current_job_id)
            last_error = outcome
        finished = True
        error = _no_model(job, last_error)
        yield {"event": "error", "code": error.code, "message": error.message}
    finally:
        if not finished and current_job_id:
            # The client went away mid-stream: stop the worker at its next token.
            await off_loop(cancel_set)(current_job_id)


def _attempt_start(job: Job, spec: str, channel: str) -> tuple[dict, str, str | None, dict | None]:
    """Send the next attempt of a streaming job to `spec`'s queue: (payload, label, queue or None when no
    worker can take it, who answers and why when it is a fallback)."""
    from config.celery import app

    attempt = len([a for a in job.attempts if a.get("code") not in SKIPPED_CODES])
    payload = job.for_spec(spec, attempt, channel)
    label = spec_label(spec)
    job.attempts.append({"spec": spec, "label": label})
    answered = job.answered(spec) if job.failures() else None
    queue = queue_for(spec)
    if queue is not None:
        _track(payload["job_id"])  # a request whose client leaves before its response starts cancels it
        # No Celery result: a stream's outcome comes as events. Asking for one subscribed this thread to the
        # result channel first, and even an ignored one builds a result backend per thread (each request has
        # a thread of its own under ASGI): ~2 ms before the send.
        app.send_task(_TASKS["chat"], args=[payload], queue=queue, ignore_result=True, result_cls=_Sent)
    return payload, label, queue, answered


class _Sent:
    """What send_task returns for a streaming attempt: its id, and no result backend behind it."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id


def _attempt_ok(job: Job, spec: str) -> dict:
    job.attempts[-1]["outcome"] = "ok"
    breaker_record(spec, ok=True)
    return job.answered(spec)


async def _attempt_events(inbox: asyncio.Queue, payload: dict, spec: str, label: str, job: Job
                          ) -> AsyncIterator[dict]:
    """One attempt's events from the worker, ending with `done` or `error` (made up here for a
    missed start deadline, a lost worker or the overall timeout)."""
    attempt = payload["attempt"]
    sent = time.monotonic()
    worker, withdrawn = None, False
    while True:
        try:
            message = await asyncio.wait_for(inbox.get(), timeout=LIVENESS_EVERY_SECONDS)
        except TimeoutError:
            now = time.monotonic()
            if worker is None and now - sent > settings.PARLEY_START_TIMEOUT:
                await sync_to_async(cancel_set, thread_sensitive=False)(payload["job_id"])
                holder = await sync_to_async(run_holder, thread_sensitive=False)(job.request_id)
                if holder and holder[0] == attempt:
                    worker, withdrawn = holder[1], True  # claimed just now; it sees the cancel and says so
                    continue
                yield {"event": "error", **{k: v for k, v in _missed_start(label).items() if k != "ok"}}
                return
            if worker is not None and not await sync_to_async(worker_alive, thread_sensitive=False)(worker):
                await sync_to_async(_release_dead, thread_sensitive=False)(job.request_id, attempt)
                yield {"event": "error", "code": "worker_lost", "retryable": True,
                       "message": f"The worker serving {label} stopped answering."}
                return
            if now - sent > settings.PARLEY_REQUEST_TIMEOUT:
                await sync_to_async(cancel_set, thread_sensitive=False)(payload["job_id"])
                yield {"event": "error", "code": "request_timeout", "retryable": False,
                       "message": f"{label} did not finish within {settings.PARLEY_REQUEST_TIMEOUT:.0f} s."}
                return
            continue
        if message.get("attempt") != attempt or message.get("type") != "inference.event":
            continue  # a late message from an abandoned attempt
        event = message["event"]
        if event == "start":
            worker = message["worker"]
        elif event in ("delta", "queued"):
            yield message
        elif withdrawn and message.get("code") == "canceled_before_start":
            yield {"event": "error", **{k: v for k, v in _missed_start(label).items() if k != "ok"}}
            return
        else:
            yield message
            return
