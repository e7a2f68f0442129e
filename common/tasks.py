from __future__ import annotations

import socket
import time

from celery import shared_task


@shared_task(name="common.tasks.ping", acks_late=False)
def ping(sent_at: float) -> dict[str, object]:
    """Round trip through a queue: proves a worker consumes it and says how long it took."""
    return {"hostname": socket.gethostname(), "sent_at": sent_at, "received_at": time.time()}
