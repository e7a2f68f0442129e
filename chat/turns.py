"""One chat turn: the user's message in, a streamed assistant reply out, as protocol frames.

Shared by the WebSocket consumers (text and voice) and the SSE endpoint, so every client sees
the same `delta` / `done` / `error` / `metrics` frames (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from accounts.models import User
from chat.frames import alternatives_frame, memory_frame, message_frame, tool_step_frame
from chat.memory import memory_build
from chat.metrics import LLM_COMPLETION_TOKENS, LLM_TOKENS_PER_S, LLM_TTFT_MS
from chat.models import Conversation, Message
from chat.selectors import message_alternatives, messages_before, messages_to_leaf
from chat.services import (
    conversation_set_knowledge,
    conversation_set_model,
    message_assistant_finish,
    message_assistant_progress,
    message_assistant_start,
    message_reply_target,
    message_text_check,
    message_user_create,
    message_user_edit,
)
from chat.tools import assistant_tools
from common.errors import ApplicationError
from common.redis_connection import redis_client
from inference.services import Caller, ChatStream, chat_stream

logger = logging.getLogger(__name__)

# How often a streaming reply's partial text is written to its row.
PROGRESS_SAVE_SECONDS = 1.0
BUSY_TTL_SECONDS = 900
# While a turn streams, its web process holds a lease on the reply. A reply whose lease lapsed
# belongs to a process that died; chat's sweep (beat, every 10 s) finishes it from the worker's
# stored outcome, so the text generated is kept (chat.services.messages_finish_orphaned).
LEASE_PREFIX = "parley:chat:lease:"
LEASE_TTL_SECONDS = 10
LEASE_EVERY_SECONDS = 3
# Built-in tool calls a reply may make (chat.tools); after the last the model answers without tools.
MAX_TOOL_STEPS = 4
TOOL_RESULT_CHARS = 4000  # of a tool's result, kept on the message for the page


class _Moved(Exception):
    """The conversation got another message while a speculative reply was being written."""


class TurnRefused(Exception):
    def __init__(self, code: str, message: str, extra: dict | None = None, status: int = 409):
        super().__init__(message)
        self.code, self.message, self.extra, self.status = code, message, extra or {}, status

    @classmethod
    def of(cls, exc: ApplicationError) -> TurnRefused:
        """The one mapping of a refused request to a socket error frame, for text and voice turns: a plan's
        limit keeps `plan_limit` with its numbers and upgrade link (the page shows an Upgrade button); an API
        key's or a model's budget is `rate_limited`; anything else keeps its code."""
        code = "rate_limited" if exc.status == 429 and exc.code != "plan_limit" else exc.code
        refused = cls(code, exc.message, extra=exc.extra, status=exc.status)
        refused.cause = exc
        return refused

    def frame(self) -> dict:
        return {"type": "error", "code": self.code, "message": self.message, **self.extra}

    def error(self) -> ApplicationError:
        """The same refusal as an HTTP error (the SSE endpoint answers it before any stream starts): the
        original error where there is one, so its code is the API's (`rate_limit_exceeded`, not the frame's)."""
        return getattr(self, "cause", None) or ApplicationError(self.message, code=self.code, status=self.status,
                                                                extra=self.extra)


@dataclass
class Turn:
    """A user's message and its reply. `regenerate` (a message id) answers an earlier message of the user's
    again, as an alternative reply; `edit` (a message id) sends `text` as a new branch beside that message."""

    user: User
    conversation: Conversation
    text: str = ""
    via: str = "text"
    regenerate: int | None = None
    edit: int | None = None
    use_knowledge: bool | None = None
    # The collections to answer from, as picked in the composer: None for all readable, a list of ids, or
    # ... (not given) for the conversation's own choice.
    knowledge_collections: object = ...
    api_key: object | None = None  # the key an SSE client used; its limits apply too
    model: str = ""  # a model or route picked in the composer; "" = the conversation's choice
    # A speculative turn (voice: begun on a transcript while the user may still go on) sends its request
    # but stores nothing: `confirm()` stores the messages once the final transcript matches, `discard()`
    # withdraws it without a trace (no message, no request counted).
    speculative: bool = False
    started: float = field(default_factory=time.perf_counter)
    # Filled by prepare():
    message: Message | None = None
    user_message: Message | None = None
    stream: ChatStream | None = None
    released: bool = False
    citations: list = field(default_factory=list)
    title: str = ""  # a provisional title this turn gave the conversation (its first words)
    summary_usage: dict = field(default_factory=dict)
    leaf_id: int | None = None  # a speculative turn: the message its reply follows
    note: dict = field(default_factory=dict)
    # For a reply's tool steps (chat.tools): what the first request was made with, and the steps taken.
    caller: Caller | None = None
    model_name: str = ""
    messages: list = field(default_factory=list)
    tools: list = field(default_factory=list)
    tool_steps: list = field(default_factory=list)
    tool_rounds: int = 0  # requests made after tools ran
    tools_done: bool = False  # the model repeated a call or went past the limit: it answers next

    def _busy_key(self) -> str:
        return f"parley:chat:busy:{self.conversation.pk}"

    def prepare(self) -> None:
        """Sync part: store the user's message, check limits, build the prompt, open the reply row."""
        assistant = self.conversation.assistant
        if not redis_client().set(self._busy_key(), "1", nx=True, ex=BUSY_TTL_SECONDS):
            raise TurnRefused("busy", "A reply is still being written in this conversation. "
                                      "Wait for it or stop it before sending another message.")
        try:
            untitled = not self.conversation.title
            if self.speculative:
                history, self.leaf_id = messages_to_leaf(conversation=self.conversation)
                self.text = message_text_check(self.text)
            elif self.regenerate is not None:
                self.user_message = message_reply_target(conversation=self.conversation, message_id=self.regenerate)
                self.text = self.user_message.text
            elif self.edit is not None:
                self.user_message = message_user_edit(conversation=self.conversation, message_id=self.edit,
                                                      text=self.text, via=self.via)
            else:
                self.user_message = message_user_create(conversation=self.conversation, text=self.text, via=self.via)
            if self.user_message is not None:
                if untitled and self.conversation.title:
                    self.title = self.conversation.title
                self.text = self.user_message.text
                history = messages_before(conversation=self.conversation, message=self.user_message)
            caller = Caller(user=self.user, api_key=self.api_key, via="voice" if self.via == "voice" else "app")
            model = self.model or self.conversation.model or assistant.route_alias
            memory = memory_build(caller=caller, model=model, path=history,
                                  budget_tokens=settings.PARLEY_CHAT_CONTEXT_TOKENS)
            self.summary_usage = memory.note.get("summary", {}).get("usage", {}) \
                if not memory.note.get("summary_reused") else {}
            system = assistant.system_prompt
            if memory.summary:
                system += f"\n\nA summary of the earlier conversation, which is not shown: {memory.summary}"
            knowledge = self.conversation.use_knowledge if self.use_knowledge is None else self.use_knowledge
            if not self.speculative and (self.use_knowledge is not None or self.knowledge_collections is not ...):
                # The composer's choice is the conversation's from now on (a reload shows it).
                conversation_set_knowledge(conversation=self.conversation, enabled=bool(knowledge),
                                           collections=self.knowledge_collections)
            if knowledge:
                system, self.citations = _with_knowledge(system, user=self.user, query=self.text,
                                                         conversation=self.conversation)
            messages = [{"role": "system", "content": system}, *memory.history, {"role": "user", "content": self.text}]
            self.caller, self.model_name, self.messages = caller, model, messages
            self.tools = [tool.schema() for tool in assistant_tools(assistant)]
            self.stream = chat_stream(caller=caller, model=model, messages=messages,
                                      max_tokens=assistant.max_tokens, temperature=assistant.temperature,
                                      shrink_to_fit=True, tools=self.tools or None)
            self.note = memory.note
            self.note["knowledge"] = bool(knowledge)
            if not self.speculative:
                self._store_reply()
        except ApplicationError as exc:
            self.release()
            refused = TurnRefused.of(exc)
            if self.user_message is not None:  # stored before the refusal: the page can retry it
                refused.extra = {**refused.extra, "user_message_id": self.user_message.pk}
            raise refused from exc
        except Exception:
            self.release()
            raise

    def _store_reply(self) -> None:
        if self.model and self.model != self.conversation.model:
            conversation_set_model(conversation=self.conversation, model=self.model)
        self.message = message_assistant_start(conversation=self.conversation, request_id=self.stream.request_id,
                                               context=self.note, via=self.via, citations=self.citations,
                                               parent=self.user_message)
        self._lease()

    def confirm(self) -> bool:
        """A speculative turn becomes the turn: its messages are stored and its reply, already being written,
        is read from the start. False (and discarded) if the conversation moved on meanwhile."""
        try:
            with transaction.atomic():
                untitled = not self.conversation.title
                self.user_message = message_user_create(conversation=self.conversation, text=self.text, via=self.via)
                if self.user_message.parent_id != self.leaf_id:
                    raise _Moved
                if untitled and self.conversation.title:
                    self.title = self.conversation.title
                self._store_reply()
        except (_Moved, ApplicationError):
            self.user_message = self.message = None
            self.discard()
            return False
        self.speculative = False
        return True

    def discard(self) -> None:
        """Withdraw a speculative turn: its request stops and counts for nothing; nothing was stored."""
        if self.stream is not None:
            self.stream.withdraw()
        self.release()

    def _alternatives(self):
        return message_alternatives(message=self.user_message), message_alternatives(message=self.message)

    def _title_request(self) -> None:
        """After the first reply, the model titles the conversation (a no-op claim for any later reply)."""
        from chat.tasks import conversation_autotitle

        if self.conversation.title_source in ("", "first_words"):
            conversation_id = self.conversation.pk
            transaction.on_commit(lambda: conversation_autotitle.delay(conversation_id))

    def release(self) -> None:
        """Settle the reservation and free the conversation; once is enough (later calls do nothing)."""
        if self.released:
            return
        self.released = True
        if self.stream is not None:
            self.stream.close()  # settles the reservation (a no-op once the stream has settled it)
        redis_client().delete(self._busy_key())
        if self.message is not None:
            redis_client().delete(LEASE_PREFIX + str(self.message.pk))

    def _lease(self) -> None:
        redis_client().set(LEASE_PREFIX + str(self.message.pk), "1", ex=LEASE_TTL_SECONDS)

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(LEASE_EVERY_SECONDS)
            await sync_to_async(self._lease, thread_sensitive=False)()

    async def run(self) -> AsyncIterator[dict]:
        """Frames of the reply. Closing the iterator early (stop, disconnect) stops the model."""
        if self.message is None:  # the SSE endpoint prepares first, to answer a refusal with its HTTP status
            try:
                await sync_to_async(self.prepare, thread_sensitive=False)()
            except TurnRefused as refused:
                yield refused.frame()
                return
        user_alternatives, alternatives = await sync_to_async(self._alternatives, thread_sensitive=False)()
        yield {"type": "start", "message_id": self.message.pk, "request_id": self.stream.request_id,
               "citations": self.citations, "model": self.stream.expected_model,
               "parent_id": self.user_message.pk, "alternatives": alternatives_frame(alternatives),
               "user_message": message_frame(self.user_message, user_alternatives),
               "memory": memory_frame(self.message.context)}
        if self.title:  # the first message titled the conversation with its first words
            yield {"type": "title", "title": self.title, "source": "first_words"}
        text, first, last_save, outcome = "", None, time.perf_counter(), None
        usage: dict[str, int] = {}
        lease = asyncio.create_task(self._keep_lease())
        try:
            while True:
                step_text, calls, outcome = "", [], None
                async for event in self.stream:
                    now = time.perf_counter()
                    kind = event["event"]
                    if kind == "delta":
                        if first is None:
                            first = now
                            LLM_TTFT_MS.observe((now - self.started) * 1000)
                        if not step_text and text and self.tool_steps:  # the answer after a tool step
                            text += "\n\n"
                            yield {"type": "delta", "text": "\n\n"}
                        step_text += event["text"]
                        text += event["text"]
                        yield {"type": "delta", "text": event["text"]}
                        if now - last_save > PROGRESS_SAVE_SECONDS:
                            last_save = now
                            await sync_to_async(message_assistant_progress, thread_sensitive=False)(
                                message_id=self.message.pk, text=text)
                    elif kind == "tool_call":
                        calls.append(event)
                    elif kind == "queued":
                        yield {"type": "queued", "position": event["position"], "model": event["spec"]}
                    elif kind == "fallback":
                        yield {"type": "fallback", "model": event["spec"], "model_label": event["model_label"],
                               "reason": event["fallback_reason"]}
                    else:
                        outcome = event
                if not (outcome and outcome["event"] == "done" and calls):
                    break
                _usage_add(usage, outcome)
                for step in await sync_to_async(self._tools_run, thread_sensitive=False)(step_text, calls):
                    yield {"type": "tool_step", **tool_step_frame(step)}
                try:
                    await sync_to_async(self._next_step, thread_sensitive=False)()
                except ApplicationError as exc:
                    outcome = {"event": "error", "code": TurnRefused.of(exc).code, "message": exc.message}
                    break
            if usage and outcome:
                outcome = {**outcome, "usage": _usage_add(dict(usage), outcome)}
            if outcome and outcome["event"] == "done":
                self.citations = citations_used(text, self.citations)
                metrics = self._metrics(first, outcome)
                LLM_COMPLETION_TOKENS.inc(metrics["completion_tokens"])
                if metrics["tokens_per_s"]:
                    LLM_TOKENS_PER_S.observe(metrics["tokens_per_s"])
                await self._finish(text, Message.Status.DONE, outcome, metrics)
                await self._release_now(lease)  # before `done`: a client may send its next message at once
                await sync_to_async(self._title_request, thread_sensitive=False)()
                yield {"type": "done", "message_id": self.message.pk, "finish_reason": outcome["finish_reason"],
                       "citations": self.citations, **_answered(outcome)}
                yield {"type": "metrics", **metrics}
            else:
                error = outcome or {"code": "unavailable", "message": "The model stopped answering."}
                status = Message.Status.INTERRUPTED if text else Message.Status.FAILED
                await self._finish(text, status, error, self._metrics(first, None), error=error["message"])
                await self._release_now(lease)
                yield {"type": "error", "code": error["code"], "message": error["message"],
                       "message_id": self.message.pk}
        except (asyncio.CancelledError, GeneratorExit):
            # Stop or disconnect: keep what was written, marked interrupted.
            await asyncio.shield(self._finish(text, Message.Status.INTERRUPTED, None, self._metrics(first, None),
                                              error="Stopped before the reply was complete."))
            raise
        finally:
            await self._release_now(lease)

    async def _release_now(self, lease: asyncio.Task) -> None:
        lease.cancel()
        if not self.released:
            await sync_to_async(self.release, thread_sensitive=False)()

    def _metrics(self, first: float | None, done: dict | None) -> dict:
        now = time.perf_counter()
        usage = (done or {}).get("usage", {})
        tokens = usage.get("completion_tokens", 0)
        ttft_ms = (first - self.started) * 1000 if first else None
        decode_s = now - first if first else 0
        return {
            "ttft_ms": round(ttft_ms, 1) if ttft_ms is not None else None,
            "duration_ms": round((now - self.started) * 1000, 1),
            "completion_tokens": tokens,
            "tokens_per_s": round((tokens - 1) / decode_s, 1) if decode_s > 0 and tokens > 1 else None,
            "model": (done or {}).get("spec", ""),
            "worker_ttft_ms": round(done["ttft_ms"], 1) if done and done.get("ttft_ms") else None,
        }

    async def _finish(self, text: str, status: str, outcome: dict | None, metrics: dict, error: str = "") -> None:
        outcome = outcome or {}
        await sync_to_async(message_assistant_finish, thread_sensitive=False)(
            message_id=self.message.pk, text=text, status=status, model_name=outcome.get("spec", ""),
            model_note=_answered(outcome)["model_note"] if outcome.get("spec") else "",
            usage={**outcome.get("usage", {}), **({"summary": self.summary_usage} if self.summary_usage else {})},
            timings=metrics, error=error, citations=self.citations if status == Message.Status.DONE else None,
            tool_steps=self.tool_steps)

    # ------------------------------------------------------------------ built-in tools

    def _tools_run(self, step_text: str, calls: list[dict]) -> list[dict]:
        """Run the calls the model just made (sync: tools touch the database and the network). A call
        repeated with the same arguments is not run again, and ends the tool steps: small models repeat a
        call rather than answer. Past MAX_TOOL_STEPS calls nothing more runs."""
        from chat.tools import tool_run

        assistant, steps = self.conversation.assistant, []
        done = {(step["name"], json.dumps(step["arguments"], sort_keys=True)) for step in self.tool_steps}
        for call in calls:
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except ValueError:
                arguments = call["arguments"]
            key = (call["name"], json.dumps(arguments, sort_keys=True))
            if key in done or len(self.tool_steps) >= MAX_TOOL_STEPS:
                self.tools_done = True
                continue
            result = tool_run(user=self.user, assistant=assistant, name=call["name"], arguments=arguments)
            step = {"name": call["name"], "arguments": arguments, "summary": result.summary, "ok": result.ok,
                    "content": result.content[:TOOL_RESULT_CHARS], "data": result.data}
            self.tool_steps.append(step)
            done.add(key)
            steps.append(step)
        return steps

    def _next_step(self) -> None:
        """The model's next step after its tools ran: a request of the same turn (its tokens count, it is
        not another request). The results are numbered into the user's message, like knowledge passages,
        rather than sent as Qwen's <tool_response> turns after the model's own calls: given those, the
        bundled 0.5B model echoes its call instead of answering (docs/protocol.md), and with the results
        in the system message it described its tools instead; this way it answers from them. Tools are
        offered again, for a further step, until MAX_TOOL_STEPS calls or rounds or a repeated call; then
        the model answers without them."""
        assistant = self.conversation.assistant
        self.tool_rounds += 1
        last = self.tools_done or len(self.tool_steps) >= MAX_TOOL_STEPS or self.tool_rounds >= MAX_TOOL_STEPS
        results = "\n\n".join(
            f"[{index}] {step['name']}({json.dumps(step['arguments'], ensure_ascii=False)}):\n{step['content']}"
            for index, step in enumerate(self.tool_steps, start=1))
        question = self.messages[-1]["content"]
        asked = (f"{question}\n\n(You already used tools for this message; what they returned:\n\n{results}\n\n"
                 "Answer my message from these results"
                 + (", or call another tool if one is still needed.)" if not last else ".)"))
        messages = [*self.messages[:-1], {"role": "user", "content": asked}]
        self.stream.close()
        self.stream = chat_stream(caller=self.caller, model=self.model_name, messages=messages,
                                  max_tokens=assistant.max_tokens, temperature=assistant.temperature,
                                  shrink_to_fit=True, tools=self.tools, tool_choice="none" if last else "auto",
                                  metering="tool_step")


def _usage_add(total: dict, outcome: dict) -> dict:
    """Sum a step's token usage into `total` (a reply with tool steps is several requests to the model)."""
    for key, value in (outcome.get("usage") or {}).items():
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value
    return total


def _answered(outcome: dict) -> dict:
    """Who answered, for the `done` frame and the page: "Answered by SmolLM2 135M because Qwen … failed to load"."""
    label = outcome.get("model_label") or outcome.get("spec", "")
    engine = outcome.get("engine", "local")
    note = f"Answered by {label} ({'upstream API' if engine == 'upstream' else 'local'})"
    if outcome.get("fallback"):
        note += f" because {outcome['fallback_reason']}"
    return {"model": outcome.get("spec", ""), "model_label": label, "engine": engine,
            "fallback": bool(outcome.get("fallback")), "fallback_reason": outcome.get("fallback_reason", ""),
            "model_note": note}


def _with_knowledge(system: str, *, user: User, query: str, conversation: Conversation) -> tuple[str, list]:
    """The system prompt with numbered sources from the user's collections, if knowledge is installed."""
    try:
        from knowledge.selectors import CITATION_INSTRUCTIONS, context_for_chat
    except ImportError:
        return system, []
    # None: every collection the user may read; a list: those of them (ids they may not read are ignored).
    context, citations = context_for_chat(user=user, query=query, collection_ids=conversation.knowledge_collections)
    if not context:
        return system, []
    citations = [{**citation, "title": citation.get("document_title", "")} for citation in citations]
    return (f"{system}\n\nAnswer from these sources when they are relevant. {CITATION_INSTRUCTIONS}\n\n{context}",
            citations)


def citations_used(text: str, citations: list[dict]) -> list[dict]:
    """The sources a finished reply cites with [n] markers, each marked `cited`. A reply with no marker
    (small models often give none) keeps every source it was given, marked not cited: the page lists
    them as consulted, not as citations."""
    if not citations:
        return []
    try:
        from knowledge.selectors import sources_cited
    except ImportError:
        return citations
    cited = sources_cited(answer=text, sources=citations)
    if cited:
        return [{**citation, "cited": True} for citation in cited]
    return [{**citation, "cited": False} for citation in citations]
