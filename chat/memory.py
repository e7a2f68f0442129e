"""A turn's memory: the earlier messages of its branch that fit the token budget, and a model-written summary
of those that don't.

Order of work, per turn:
1. Take the branch's usable messages before the user's new one, newest first, while they fit the budget.
2. If they all fit, that is the history. Otherwise reuse the latest summary on the branch (kept in an earlier
   reply's `context`) when what follows it still fits beside it.
3. Else summarize: the earlier summary plus the messages between it and a fresh window (half the budget, so
   the next several turns reuse this summary rather than paying for a new one). Messages that don't fit the
   summary call's own input are dropped, oldest first.
4. The summary call runs on the turn's model, for the turn's caller, metered as part of the turn (its tokens,
   not a request of its own). If it is refused or fails, older messages are dropped, as before summaries.
The reply's `context` records which ids were summarized and which dropped, and the page says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from chat.models import Message
from common.errors import ApplicationError
from inference.services import Caller, chat_complete, tokens_estimate

logger = logging.getLogger(__name__)

SUMMARY_MAX_TOKENS = 200
SUMMARY_PROMPT = (
    "You keep a running summary of a conversation between a user and an assistant. Write a short summary, in "
    "the third person, of the facts, names, numbers, decisions and open questions below, merged with the "
    "earlier summary if there is one. At most 120 words. Reply with the summary only."
)


@dataclass
class Memory:
    history: list[dict[str, str]]
    summary: str = ""
    note: dict = field(default_factory=dict)


def _cost(message: Message) -> int:
    return tokens_estimate([message.text])


def _usable(message: Message) -> bool:
    return bool(message.text) and (
        message.role == Message.Role.USER or message.status in (Message.Status.DONE, Message.Status.INTERRUPTED))


def _window(turns: list[Message], budget: int) -> list[Message]:
    """The newest turns that fit `budget`, oldest first."""
    picked, used = [], 0
    for message in reversed(turns):
        cost = _cost(message)
        if used + cost > budget:
            break
        picked.append(message)
        used += cost
    picked.reverse()
    return picked


def _previous_summary(path: list[Message]) -> dict | None:
    for message in reversed(path):
        summary = (message.context or {}).get("summary")
        if message.role == Message.Role.ASSISTANT and isinstance(summary, dict) and summary.get("text"):
            return summary
    return None


def memory_build(*, caller: Caller, model: str, path: list[Message], budget_tokens: int) -> Memory:
    """History for a turn whose earlier messages (root first, the new user message excluded) are `path`."""
    turns = [message for message in path if _usable(message)]
    window = _window(turns, budget_tokens)
    note = {"turns_total": len(turns), "budget_tokens": budget_tokens, "summarized_ids": [], "dropped_ids": []}
    if len(window) == len(turns):
        return Memory(history=_as_chat(window), note=_counted(note, window, ""))

    previous = _previous_summary(path)
    if previous is not None:
        covered = set(previous.get("summarized_ids", [])) | set(previous.get("dropped_ids", []))
        after = [m for m in turns if m.pk not in covered and m.pk > previous.get("through_id", 0)]
        if sum(map(_cost, after)) + tokens_estimate([previous["text"]]) <= budget_tokens:
            note.update(summarized_ids=previous["summarized_ids"], dropped_ids=previous.get("dropped_ids", []),
                        summary=previous, summary_reused=True)
            return Memory(history=_as_chat(after), summary=previous["text"],
                          note=_counted(note, after, previous["text"]))
    else:
        covered = set()

    fresh = _window(turns, budget_tokens // 2)
    fresh_ids = {m.pk for m in fresh}
    pending = [m for m in turns if m.pk not in covered and m.pk not in fresh_ids]
    earlier = previous["text"] if previous else ""
    room = budget_tokens - tokens_estimate([SUMMARY_PROMPT, earlier]) - SUMMARY_MAX_TOKENS
    summarized = _window(pending, max(room, 0))
    dropped = [m.pk for m in pending if m not in summarized]
    try:
        result = chat_complete(
            caller=caller, model=model, metering="summary", max_tokens=SUMMARY_MAX_TOKENS, temperature=0.2,
            shrink_to_fit=True, messages=[
                {"role": "system", "content": SUMMARY_PROMPT},
                {"role": "user", "content": _transcript(earlier, summarized)},
            ])
    except ApplicationError as exc:
        # Refused (a spent budget) or failed: the turn goes on with what fits, as it did before summaries.
        logger.info("chat memory: summary skipped: %s", exc.message)
        note.update(dropped_ids=[m.pk for m in turns if m not in window], summary_error=exc.message)
        return Memory(history=_as_chat(window), note=_counted(note, window, ""))
    text = result["text"].strip()
    summary = {
        "text": text,
        "through_id": max((m.pk for m in pending), default=previous.get("through_id", 0) if previous else 0),
        "summarized_ids": sorted(set(previous["summarized_ids"] if previous else []) | {m.pk for m in summarized}),
        "dropped_ids": sorted(set(previous.get("dropped_ids", []) if previous else []) | set(dropped)),
        "request_id": result["request_id"], "model": result.get("spec", ""), "usage": result.get("usage", {}),
    }
    if not text:  # a model that answered nothing: keep what fits, as when the call fails
        note.update(dropped_ids=[m.pk for m in turns if m not in window], summary_error="The summary was empty.")
        return Memory(history=_as_chat(window), note=_counted(note, window, ""))
    note.update(summarized_ids=summary["summarized_ids"], dropped_ids=summary["dropped_ids"], summary=summary)
    return Memory(history=_as_chat(fresh), summary=text, note=_counted(note, fresh, text))


def _counted(note: dict, included: list[Message], summary: str) -> dict:
    note.update(turns_included=len(included), turns_dropped=note["turns_total"] - len(included),
                estimated_tokens=sum(map(_cost, included)) + (tokens_estimate([summary]) if summary else 0))
    return note


def _as_chat(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.text} for m in messages]


def _transcript(earlier: str, messages: list[Message]) -> str:
    lines = [f"Earlier summary: {earlier}", ""] if earlier else []
    lines += [f"{'User' if m.role == Message.Role.USER else 'Assistant'}: {m.text}" for m in messages]
    return "\n".join(lines)
