"""Inference's one public face: `chat_stream`, `chat_complete`, `embed`, `transcribe`, `synthesize`.

Every caller reaches a model through these (chat turns, voice, knowledge answers, `/v1`, ingest),
re-exported by `inference.services`. Each one, in this order:
1. resolves the route and keeps the models the caller may use (PARLEY_MODEL_ACCESS_POLICY);
2. estimates the prompt with the one estimator and checks the context length;
3. reserves quota for the user, the API key and the model: tokens for chat and embeddings, audio
   seconds for speech to text, characters for speech (see METERING);
4. runs the job through the gateway (fallback, cancellation, start deadlines);
5. settles the reservation to what was really used. The worker writes one usage row per attempt,
   carrying the API key when there is one.
Nothing outside inference imports the gateway, the quotas or the job type.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from asgiref.sync import sync_to_async

from common.errors import ApplicationError, plan_limit_error
from inference import gateway
from inference.access import plan_for, specs_allowed
from inference.models import ModelSpec
from inference.quotas import QuotaExceeded, Reservation, limits_for, quota_reserve, tokens_estimate
from inference.toolcalls import (
    DEFAULT_SYSTEM,
    ToolCallParser,
    ToolsInvalid,
    messages_with_tools,
    tool_calls_parse,
    tools_offered,
    tools_validate,
)

__all__ = [
    "Caller", "ChatStream", "GatewayError", "QuotaExceeded", "chat_complete", "chat_stream",
    "embed", "job_cancel", "job_outcome", "jobs_tracked", "synthesize", "tokens_estimate", "transcribe",
]

GatewayError = gateway.GatewayError
jobs_tracked = gateway.jobs_tracked

# Tokens a chat template and its default system message add around the messages.
CHAT_TEMPLATE_TOKENS = 30
DEFAULT_MAX_TOKENS = 512

# Which budgets a call counts against, by what it is and where it comes from. One table, so no
# path (voice, knowledge, SSE, /v1) can skip a budget the others pay.
#  - previews (partial transcripts while the user still speaks) re-decode audio the final
#    transcript bills once, and come several times a second: they count against nothing;
#  - ingest embeds whole documents in batches; storage limits bound it, not the token budget,
#    so an upload never fails half-way through on tokens per day.
METERING: dict[str, dict[str, bool]] = {
    "chat": {"requests": True, "tokens": True},
    "embed": {"requests": True, "tokens": True},
    "stt": {"requests": True, "audio_seconds": True},
    "tts": {"requests": True, "characters": True},
    # The query embedding of a grounded answer or a chat turn with knowledge: part of the request
    # that needed it, so its tokens count but it is not a request of its own. A search on its own
    # (the knowledge API without an answer, the search page) is a request.
    "lookup": {"tokens": True},
    "search": {"requests": True, "tokens": True},
    "preview": {},
    "ingest": {},
    # Calls chat makes around a turn: the summary of older messages is part of the turn that needed it
    # (its tokens count, it is not a request of its own); a conversation's title is a system call that
    # never takes a request from the user's plan, and is refused (chat falls back to the first words)
    # only when the day's tokens are spent.
    "summary": {"tokens": True},
    "title": {"tokens": True},
    # The model's next step after a built-in tool ran (chat.tools): part of the turn that called it.
    "tool_step": {"tokens": True},
    # Another model's attempt at a request whose first attempt failed (the gateway's fallback): reserved
    # and counted with that request; here so the ledger row's metering says so.
    "fallback": {"tokens": True},
}
CHAT_METERINGS = ("chat", "summary", "title", "tool_step")


@dataclass(frozen=True)
class Caller:
    """Who asks: the user, the API key they used (if any) and the path the call came by."""

    user: object  # accounts.models.User
    api_key: object | None = None  # accounts.models.ApiKey
    via: str = "app"  # app, api, voice, knowledge, ingest

    @property
    def api_key_id(self) -> int | None:
        return getattr(self.api_key, "pk", None)

    @cached_property
    def plan(self):
        """The user's plan limits, read once per call (inference.access.plan_for)."""
        return plan_for(self.user)


# ----------------------------------------------------------------------------- access


def _resolve(*, caller: Caller, model: str, task: str) -> tuple[str, list[ModelSpec], list[ModelSpec]]:
    """(route alias, the models the caller may use that are ready, those still installing)."""
    from inference.selectors import route_get, route_resolve

    route, specs = route_resolve(model=model, task=task)
    rule = route_get(alias=route) if route else None
    ready, installing = _installed(specs_allowed(caller=caller, model=model, route=rule, specs=specs), model)
    return route, ready, installing


def _reserve(*, caller: Caller, model: str, specs: list[ModelSpec], kind: str, tokens: int = 0,
             min_tokens: int = 1, audio_seconds: int = 0, characters: int = 0) -> Reservation:
    meter = METERING[kind]
    if not meter or caller.user is None:
        return Reservation()
    first = specs[0]
    limits = limits_for(user=caller.user, api_key=caller.api_key, model=model,
                        spec_limits=(first.rpm_limit, first.tokens_per_day_limit), plan=caller.plan)
    return quota_reserve(
        limits=limits, tokens=tokens if meter.get("tokens") else 0, min_tokens=min_tokens,
        audio_seconds=audio_seconds if meter.get("audio_seconds") else 0,
        characters=characters if meter.get("characters") else 0, count_request=meter.get("requests", False),
    )


def _job(*, caller: Caller, task: str, prefix: str, route: str, payload: dict, metering: str,
         skipped: list[ModelSpec] = ()) -> gateway.Job:
    """The job for a worker; `metering` (how the plan counts it) goes to the worker's ledger row."""
    job = gateway.Job(request_id=gateway.request_id_new(prefix), task=task, user_id=caller.user.pk,
                      api_key_id=caller.api_key_id, route=route, payload={**payload, "metering": metering})
    for spec in skipped:  # the reply that comes from the next model says why
        job.skip(spec.name, gateway.spec_label(spec.name),
                 "installing" if spec.install_state == "installing" else "not_installed")
    return job


def _installed(specs: list[ModelSpec], model: str) -> tuple[list[ModelSpec], list[ModelSpec]]:
    """(ready, not ready): a model still installing in the background, or whose install stopped, is passed
    over rather than tried (it has no files to load)."""
    ready = [spec for spec in specs if spec.install_state == "ready"]
    others = [spec for spec in specs if spec.install_state != "ready"]
    if not ready:
        first = others[0]
        state = (f"is still being installed ({first.install_progress:.0%})" if first.install_state == "installing"
                 else f"could not be installed here: {first.install_message or first.install_state}")
        raise GatewayError(f"`{model}` {state}. Try again later or pick another model.", code="model_installing")
    return ready, others


# ----------------------------------------------------------------------------- chat


@dataclass
class _ChatPlan:
    route: str
    specs: list[ModelSpec]
    job: gateway.Job
    reservation: Reservation
    prompt_estimate: int
    # The tools the model was offered (parsed out of its reply), and how many calls a reply may make.
    tools: list[dict] = field(default_factory=list)
    max_calls: int | None = None

    def parser(self) -> ToolCallParser | None:
        return ToolCallParser(self.tools, max_calls=self.max_calls) if self.tools else None


def _chat_plan(*, caller: Caller, model: str, messages: list[dict], max_tokens: int | None,
               temperature: float, top_p: float, stop: list[str] | None, shrink_to_fit: bool,
               metering: str = "chat", tools: list[dict] | None = None, tool_choice: str | dict | None = None,
               parallel_tool_calls: bool = True) -> _ChatPlan:
    try:
        tools, tool_choice = tools_validate(tools, tool_choice, parallel_tool_calls)
    except ToolsInvalid as exc:
        raise ApplicationError(f"Invalid value for `{exc.param}`: {exc.message}", code="invalid_value",
                               extra={"param": exc.param}) from None
    route, specs, installing = _resolve(caller=caller, model=model, task="chat")
    # Tools and tool turns become plain messages here, before the estimate: every backend then sees the
    # same prompt, and the tool definitions count against the context like any other text.
    messages = messages_with_tools(messages, tools, tool_choice, parallel_tool_calls=parallel_tool_calls,
                                   system=specs[0].params.get("system_prompt") or DEFAULT_SYSTEM)
    estimate = tokens_estimate([m["content"] for m in messages], overhead=CHAT_TEMPLATE_TOKENS)
    # Only the models of the route the conversation fits in may serve it (a small fallback with a
    # short context is skipped for a long prompt, rather than failing the request).
    fitting = [spec for spec in specs if estimate < spec.context_length]
    if not fitting:
        context = max(spec.context_length for spec in specs)
        raise ApplicationError(
            f"The conversation is about {estimate} tokens; {model} takes at most {context}. Shorten the messages.",
            code="context_length_exceeded", status=400, extra={"param": "messages"})
    specs = fitting
    context = min(spec.context_length for spec in specs)
    room = context - estimate
    if max_tokens is None:
        max_tokens = min(DEFAULT_MAX_TOKENS, room)
    elif max_tokens > room:
        if not shrink_to_fit:
            raise ApplicationError(
                f"max_tokens is {max_tokens}, but {model} has a context of {context} tokens and the messages take "
                f"about {estimate}. Ask for at most {room} tokens.", code="context_length_exceeded", status=400,
                extra={"param": "max_tokens"})
        max_tokens = room
    cap = caller.plan.max_tokens_per_reply if caller.user is not None else 0
    if cap and max_tokens > cap:
        if not shrink_to_fit:  # the client asked for more than its plan allows; the app's own turns just fit
            raise plan_limit_error(plan=caller.plan, limit="max_tokens_per_reply", label="tokens per reply",
                                   used=max_tokens, asked=0)
        max_tokens = cap
    reservation = _reserve(caller=caller, model=model, specs=specs, kind=metering, tokens=estimate + max_tokens,
                           min_tokens=estimate + 1)
    if reservation.granted:
        # A nearly spent budget grants a shorter answer rather than none.
        max_tokens = max(1, min(max_tokens, reservation.granted - estimate))
    job = _job(caller=caller, task="chat", skipped=installing, prefix="chatcmpl", route=route, metering=metering,
               payload={"messages": messages, "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p,
                        "stop": stop or []})
    return _ChatPlan(route=route, specs=specs, job=job, reservation=reservation, prompt_estimate=estimate,
                     tools=tools_offered(tools, tool_choice), max_calls=None if parallel_tool_calls else 1)


@dataclass
class ChatStream:
    """A reserved chat request whose first attempt is already on its way to a worker. Iterate it (async)
    for events: `queued` {position}, `fallback` {spec, model_label, fallback_reason}, `delta` {text}, then
    `done` {finish_reason, usage, spec, model_label, fallback, fallback_reason, ttft_ms} or `error`
    {code, message}. With tools, `tool_call` {index, id, name, arguments} events come among the deltas
    (the deltas are then the reply's text without its calls) and `done` has finish_reason "tool_calls".
    Stopping early cancels the job. `close()` settles the reservation and cancels a job that did not
    finish (a stream never iterated included); the stream calls it when it ends."""

    plan: _ChatPlan
    start: gateway.StreamStart
    _used: int = field(default=0, init=False)
    _ended: bool = field(default=False, init=False)

    @property
    def request_id(self) -> str:
        return self.plan.job.request_id

    @property
    def max_tokens(self) -> int:
        return self.plan.job.payload["max_tokens"]

    @property
    def expected_model(self) -> str:
        return self.plan.specs[0].name

    async def __aiter__(self) -> AsyncIterator[dict]:
        parser = self.plan.parser()
        try:
            async for event in gateway.stream(self.plan.job, self.start):
                if event["event"] == "done":
                    self._used = event["usage"].get("total_tokens", 0)
                if event["event"] in ("done", "error"):
                    self._ended = True
                if parser is None:
                    yield event
                elif event["event"] == "delta":
                    for out in _tool_events(parser, parser.feed(event["text"]), event):
                        yield out
                elif event["event"] == "done":
                    for out in _tool_events(parser, parser.finish(), event):
                        yield out
                    if parser.calls and event["finish_reason"] == "stop":
                        event = {**event, "finish_reason": "tool_calls"}
                    yield event
                else:
                    yield event
        finally:
            await sync_to_async(self.close, thread_sensitive=False)()

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            # Nothing read it to the end (the client left, or the caller failed before streaming): the job
            # must not go on for nobody. Every attempt stops: the request-wide flag.
            job_cancel(request_id=self.request_id)
        self.plan.reservation.settle(self._used)

    def withdraw(self) -> None:
        """Take the request back before anything of it was read: the job stops, and it costs the caller
        nothing, not even a request (a reply begun speculatively and then not wanted)."""
        if not self._ended:
            self._ended = True
            job_cancel(request_id=self.request_id)
        self.plan.reservation.withdraw()


def _tool_events(parser: ToolCallParser, parts: list, event: dict) -> list[dict]:
    """A delta's (or the end's) text and calls as `delta` and `tool_call` events, in order."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append({**event, "event": "delta", "text": part})
        else:
            out.append({"event": "tool_call", "index": parser.calls.index(part), "id": part.id, "name": part.name,
                        "arguments": part.arguments, "spec": event.get("spec", "")})
    return out


def chat_stream(*, caller: Caller, model: str, messages: list[dict], max_tokens: int | None = None,
                temperature: float = 0.7, top_p: float = 1.0, stop: list[str] | None = None,
                shrink_to_fit: bool = False, tools: list[dict] | None = None, tool_choice: str | dict | None = None,
                parallel_tool_calls: bool = True, metering: str = "chat") -> ChatStream:
    """Check and reserve a chat request and send it to a worker now (raises ApplicationError /
    QuotaExceeded); read its events later by iterating the stream, or `close()` it to withdraw it.
    `tools`, `tool_choice` and `parallel_tool_calls` are OpenAI's (see inference.toolcalls); messages may
    be OpenAI's tool results and assistant turns with `tool_calls`. `metering`: "chat" for a request of
    its own, "tool_step" for a chat turn's next step after a tool ran (its tokens count, not a request)."""
    if metering not in CHAT_METERINGS:
        raise ValueError(f"unknown chat metering {metering!r}")
    plan = _chat_plan(caller=caller, model=model, messages=messages, max_tokens=max_tokens,
                      temperature=temperature, top_p=top_p, stop=stop, shrink_to_fit=shrink_to_fit,
                      tools=tools, tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls,
                      metering=metering)
    try:
        start = gateway.stream_begin(plan.job, [spec.name for spec in plan.specs])
    except BaseException:
        plan.reservation.settle(0)
        raise
    return ChatStream(plan=plan, start=start)


def chat_complete(*, caller: Caller, model: str, messages: list[dict], max_tokens: int | None = None,
                  temperature: float = 0.7, top_p: float = 1.0, stop: list[str] | None = None,
                  shrink_to_fit: bool = False, metering: str = "chat", tools: list[dict] | None = None,
                  tool_choice: str | dict | None = None, parallel_tool_calls: bool = True) -> dict:
    """A whole reply: {"text", "tool_calls", "finish_reason", "usage", "spec", "model_label", "fallback",
    "fallback_reason", "request_id"}. Raises ApplicationError (4xx), QuotaExceeded (429) or GatewayError (503).
    `metering` is a METERING kind: "chat" for a request of its own, "summary" or "title" for chat's calls
    around a turn. With tools, "text" is the reply without its calls, "tool_calls" holds them in OpenAI's
    shape and finish_reason is "tool_calls"; a model that answers a required call in text gets that text."""
    if metering not in CHAT_METERINGS:
        raise ValueError(f"unknown chat metering {metering!r}")
    plan = _chat_plan(caller=caller, model=model, messages=messages, max_tokens=max_tokens, temperature=temperature,
                      top_p=top_p, stop=stop, shrink_to_fit=shrink_to_fit, metering=metering, tools=tools,
                      tool_choice=tool_choice, parallel_tool_calls=parallel_tool_calls)
    used = 0
    try:
        result = gateway.run(plan.job, [spec.name for spec in plan.specs])
        used = result["usage"]["total_tokens"]
    finally:
        plan.reservation.settle(used)
    calls = []
    if plan.tools:
        text, calls = tool_calls_parse(result["text"], plan.tools, max_calls=plan.max_calls)
        result = {**result, "text": text}
        if calls and result["finish_reason"] == "stop":
            result["finish_reason"] = "tool_calls"
    return {**result, "tool_calls": [call.as_openai() for call in calls], "request_id": plan.job.request_id}


# ----------------------------------------------------------------------------- embeddings


@dataclass
class Embeddings:
    vectors: np.ndarray  # float32, one unit-length row per text
    spec: str
    prompt_tokens: int


def embed(*, caller: Caller, texts: list[str], model: str = "embed-default", in_process: bool = False) -> Embeddings:
    """Vectors for `texts`. `in_process=True` is for code already running in a Celery worker (ingest):
    the model is loaded once in that process, which saves a queue round trip per batch."""
    if not texts:
        return Embeddings(vectors=np.zeros((0, 0), dtype=np.float32), spec="", prompt_tokens=0)
    route, specs, installing = _resolve(caller=caller, model=model, task="embed")
    kind = {"ingest": "ingest", "knowledge": "lookup", "search": "search"}.get(caller.via, "embed")
    estimate = tokens_estimate(texts)
    reservation = _reserve(caller=caller, model=model, specs=specs, kind=kind, tokens=estimate, min_tokens=estimate)
    used = 0
    try:
        if in_process:
            vectors, used, spec = _embed_here(caller=caller, route=route, spec=specs[0], texts=texts, metering=kind)
            return Embeddings(vectors=vectors, spec=spec, prompt_tokens=used)
        job = _job(caller=caller, task="embed", skipped=installing, prefix="embd", route=route, metering=kind,
                   payload={"input": texts})
        result = gateway.run(job, [spec.name for spec in specs])
        used = result["prompt_tokens"]
        vectors = np.stack([np.frombuffer(base64.b64decode(v), dtype="<f4") for v in result["embeddings"]])
        return Embeddings(vectors=vectors, spec=result["spec"], prompt_tokens=used)
    finally:
        reservation.settle(used)


def _embed_here(*, caller: Caller, route: str, spec: ModelSpec, texts: list[str], metering: str,
                ) -> tuple[np.ndarray, int, str]:
    from inference.runtime import host
    from inference.services import usage_record_create
    from inference.worker import spec_config

    started = time.perf_counter()
    backend = host.loaded(spec.name) or host.get(spec_config(spec.name))
    vectors, tokens = backend.embed(texts)
    if caller.user is None:  # a document whose uploader was deleted: nobody to bill
        return vectors, tokens, spec.name
    usage_record_create(request_id=f"embd-{uuid.uuid4().hex[:24]}", user_id=caller.user.pk,
                        api_key_id=caller.api_key_id, spec_name=spec.name, route_alias=route, task="embed",
                        prompt_tokens=tokens, duration_ms=(time.perf_counter() - started) * 1000, worker="in-process",
                        metering=metering)
    return vectors, tokens, spec.name


# ----------------------------------------------------------------------------- speech

SAMPLE_RATE = 16000


def transcribe(*, caller: Caller, audio: bytes, model: str = "stt-default", language: str | None = None,
               prompt: str | None = None, preview: bool = False, bill_seconds: float | None = None) -> dict:
    """Text for PCM16 mono 16 kHz `audio`: {"text", "language", "duration", "segments", "spec", ...}.
    A `preview` (a partial transcript while the user still speaks) is not billed; the final one is.
    `bill_seconds` bills an utterance of that length when `audio` is only the part of it still to decode
    (a live transcript's final pass over its unconfirmed tail)."""
    route, specs, installing = _resolve(caller=caller, model=model, task="stt")
    seconds = len(audio) / 2 / SAMPLE_RATE if bill_seconds is None else max(bill_seconds, len(audio) / 2 / SAMPLE_RATE)
    metering = "preview" if preview else "stt"
    reservation = _reserve(caller=caller, model=model, specs=specs, kind=metering, audio_seconds=math.ceil(seconds))
    used = 0
    try:
        job = _job(caller=caller, task="stt", skipped=installing, prefix="stt-partial" if preview else "stt",
                   route=route, metering=metering,
                   payload={"audio": base64.b64encode(audio).decode(), "language": language, "prompt": prompt,
                            "preview": preview, "bill_seconds": seconds})
        result = gateway.run(job, [spec.name for spec in specs])
        used = math.ceil(max(result.get("duration", seconds), seconds))
        return result
    finally:
        reservation.settle(audio_seconds=used)


def transcription_bill(*, caller: Caller, seconds: float, spec: str, model: str = "stt-default") -> None:
    """Bill an utterance whose final text is a decode already made while it was spoken (a preview that
    covered all of its speech): the same check, reservation and ledger row as a final transcription,
    without decoding the audio again. Raises QuotaExceeded past the plan's audio budget."""
    from inference.services import usage_record_create

    route, specs, _ = _resolve(caller=caller, model=model, task="stt")
    reservation = _reserve(caller=caller, model=model, specs=specs, kind="stt", audio_seconds=math.ceil(seconds))
    used = 0
    try:
        usage_record_create(request_id=gateway.request_id_new("stt"), user_id=caller.user.pk,
                            api_key_id=caller.api_key_id, spec_name=spec, route_alias=route, task="stt",
                            audio_seconds=seconds, metering="stt")
        used = math.ceil(seconds)
    finally:
        reservation.settle(audio_seconds=used)


def synthesize(*, caller: Caller, text: str, model: str = "tts-default", speed: float = 1.0) -> dict:
    """Speech for `text`: {"audio" (base64 PCM16 mono), "sample_rate", "spec", "first_chunk_ms", ...}."""
    route, specs, installing = _resolve(caller=caller, model=model, task="tts")
    reservation = _reserve(caller=caller, model=model, specs=specs, kind="tts", characters=len(text))
    used = 0
    try:
        job = _job(caller=caller, task="tts", skipped=installing, prefix="tts", route=route, metering="tts",
                   payload={"input": text, "speed": speed})
        result = gateway.run(job, [spec.name for spec in specs])
        used = len(text)
        return result
    finally:
        reservation.settle(characters=used)


# ----------------------------------------------------------------------------- jobs left behind


def job_outcome(*, request_id: str) -> dict | None:
    """The worker's last word on a chat request, kept for an hour: {"status": "done" | "error",
    "text", "finish_reason", "spec", "usage"}; None while it still runs (or if it never ran)."""
    import json

    from common.redis_connection import redis_client
    from inference.tasks import OUTCOME_PREFIX

    raw = redis_client().get(OUTCOME_PREFIX + request_id)
    return json.loads(raw) if raw else None


def job_cancel(*, request_id: str) -> None:
    """Stop every attempt of a request at its next token (the worker checks the request's flag too)."""
    from inference.streaming import cancel_set, request_cancel_key

    cancel_set(request_cancel_key(request_id))
