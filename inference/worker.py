"""Hooks that turn a Celery worker consuming `gpu` into a model host."""

from __future__ import annotations

import logging
import threading

from celery import signals

from common.heartbeat import heartbeat_extras, heartbeat_now
from inference.runtime import host

logger = logging.getLogger(__name__)

state = {"is_gpu": False}


def spec_config(name: str):
    from inference.backends import SpecConfig
    from inference.models import ModelSpec

    spec = ModelSpec.objects.filter(name=name).first()
    if spec is None:
        from inference.backends import BackendError

        raise BackendError(f"No model named {name} is registered.", code="model_not_found", retryable=False)
    return SpecConfig(
        name=spec.name, task=spec.task, backend=spec.backend, source=spec.source, sha256=spec.sha256,
        quantization=spec.quantization, params=dict(spec.params),
    )


def models_load_in_background(names: list[str]) -> None:
    def run() -> None:
        from django.db import close_old_connections

        for name in names:
            try:
                host.load(spec_config(name))
            except Exception as exc:  # noqa: BLE001 - reported in the heartbeat; keep loading the rest
                logger.warning("could not load %s: %s", name, exc)
            finally:
                close_old_connections()

    threading.Thread(target=run, name="model-loader", daemon=True).start()


@signals.worker_ready.connect
def _gpu_worker_ready(sender, **kwargs) -> None:
    queues = {queue.name for queue in sender.app.amqp.queues.consume_from.values()}
    if "gpu" not in queues:
        return
    from django.conf import settings

    state["is_gpu"] = True
    heartbeat_extras.append(host.snapshot)
    host.on_change.append(heartbeat_now)
    # Jobs for a model go to the queue of the workers holding it (inference.gateway.queue_for):
    # subscribe once it is loaded. By broadcast to ourselves, because the consumer belongs to the
    # worker's own event loop and the load finished in another thread.
    hostname = sender.hostname

    def subscribe(name: str) -> None:
        sender.app.control.add_consumer(f"{settings.PARLEY_GPU_QUEUE}.{name}", destination=[hostname], reply=False)

    def unsubscribe(name: str) -> None:
        sender.app.control.cancel_consumer(f"{settings.PARLEY_GPU_QUEUE}.{name}", destination=[hostname],
                                           reply=False)

    host.on_loaded.append(subscribe)
    host.on_unloaded.append(unsubscribe)
    models_load_in_background([name for name in settings.PARLEY_WORKER_MODELS if name])
