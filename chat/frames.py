"""The one JSON shape of a message, for socket frames (`start`, `path`) and the conversation page, so a
message rendered live and one rendered after a reload come from the same data (static/js/chat.js)."""

from __future__ import annotations

from chat.models import Message
from chat.selectors import Alternatives


def memory_frame(context: dict) -> dict | None:
    """What the reply's prompt left out of the branch: summarized and dropped messages, and the summary."""
    summarized, dropped = context.get("summarized_ids") or [], context.get("dropped_ids") or []
    if not summarized and not dropped:
        return None
    return {"summarized": len(summarized), "dropped": len(dropped), "summarized_ids": summarized,
            "dropped_ids": dropped, "summary": (context.get("summary") or {}).get("text", "")}


def alternatives_frame(alternatives: Alternatives) -> dict:
    return {"index": alternatives.index, "count": alternatives.count, "previous_id": alternatives.previous_id,
            "next_id": alternatives.next_id}


def tool_step_frame(step: dict) -> dict:
    """A tool step as the page shows it (collapsed: the summary; open: the arguments and the result)."""
    return {"name": step.get("name", ""), "summary": step.get("summary", ""), "ok": bool(step.get("ok")),
            "arguments": step.get("arguments", {}), "result": step.get("content", "")}


def message_frame(message: Message, alternatives: Alternatives) -> dict:
    frame = {
        "id": message.pk, "role": message.role, "text": message.text, "status": message.status, "via": message.via,
        "parent_id": message.parent_id, "alternatives": alternatives_frame(alternatives),
    }
    if message.role == Message.Role.ASSISTANT:
        timings = message.timings or {}
        frame.update(model_note=message.model_note, citations=message.citations or [],
                     tool_steps=[tool_step_frame(step) for step in message.tool_steps or []],
                     error=message.error if message.status == Message.Status.FAILED else "",
                     timings={"ttft_ms": timings.get("ttft_ms"), "tokens_per_s": timings.get("tokens_per_s")},
                     memory=memory_frame(message.context or {}))
    return frame
