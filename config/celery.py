"""The Celery app. Queues: `default` (ingest, embeddings, mail), `billing` (charges), `gpu` (models)."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("parley")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def _start_heartbeat(sender, **kwargs) -> None:
    from common.heartbeat import heartbeat_start

    queues = [queue.name for queue in sender.app.amqp.queues.consume_from.values()]
    heartbeat_start(hostname=sender.hostname, queues=queues)


@signals.worker_shutdown.connect
def _stop_heartbeat(sender, **kwargs) -> None:
    from common.heartbeat import heartbeat_stop

    heartbeat_stop()
