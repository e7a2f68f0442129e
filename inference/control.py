"""Remote control commands: admin's load / unload / reload reach every gpu worker by broadcast."""

from __future__ import annotations

import logging
import threading

from celery.worker.control import control_command

from inference.runtime import host
from inference.worker import spec_config, state

logger = logging.getLogger(__name__)

ACTIONS = ("load", "unload", "reload")


def _run(action: str, name: str) -> None:
    from django.db import close_old_connections

    try:
        if action == "unload":
            host.unload(name)
        else:
            host.load(spec_config(name), reload=action == "reload")
    except Exception as exc:  # noqa: BLE001 - the failure is in the heartbeat, shown in admin
        logger.warning("%s %s failed: %s", action, name, exc)
    finally:
        close_old_connections()


@control_command(args=[("action", str), ("name", str)], signature="<load|unload|reload> <model>")
def parley_model(panel, action: str, name: str) -> dict:
    """Load, unload or reload a model in this worker; the work runs in a thread, the reply is at once."""
    if not state["is_gpu"]:
        return {"ok": False, "detail": "not a gpu worker"}
    if action not in ACTIONS:
        return {"ok": False, "detail": f"unknown action {action}"}
    threading.Thread(target=_run, args=(action, name), name=f"model-{action}", daemon=True).start()
    return {"ok": True, "detail": f"{action} {name} started"}
