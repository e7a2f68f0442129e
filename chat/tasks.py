from __future__ import annotations

from celery import shared_task

from chat.services import messages_finish_orphaned, messages_interrupt_stale


@shared_task(name="chat.tasks.messages_interrupt_stale")
def interrupt_stale_messages() -> int:
    """Replies left 'streaming' by a web process that died are marked interrupted (run by beat)."""
    return messages_interrupt_stale(older_than_seconds=600)


@shared_task(name="chat.tasks.messages_finish_orphaned")
def finish_orphaned_messages() -> int:
    """Replies whose web process died mid-stream get the text the worker generated (run by beat)."""
    return messages_finish_orphaned()


@shared_task(name="chat.tasks.conversation_autotitle", ignore_result=True)
def conversation_autotitle(conversation_id: int) -> str | None:
    """The model titles a conversation after its first reply; a second run finds it claimed and does nothing."""
    from chat.titles import conversation_autotitle as autotitle

    return autotitle(conversation_id=conversation_id)
