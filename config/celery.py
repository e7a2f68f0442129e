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


@signals.beat_init.connect
def _stop_beat_from_the_main_loop(sender, **kwargs) -> None:
    """Replace celery beat's SIGTERM/SIGINT handler with one that does no database work.

    Celery's handler saves the schedule from inside the signal handler. A signal that lands while the main
    thread waits on PostgreSQL re-enters psycopg there and waits forever for the connection's lock, which
    the interrupted query holds, so the stop never ends. Raising SystemExit instead makes psycopg cancel the
    query in flight, and beat's loop saves the schedule in its `finally` on the main thread
    (tests/test_beat_stop.py).
    """
    import threading

    from celery import platforms

    if threading.current_thread() is not threading.main_thread():
        return  # an embedded beat (`worker -B`) runs in a thread and owns no signals

    def _exit(signum, frame) -> None:
        raise SystemExit()

    platforms.signals.update(SIGTERM=_exit, SIGINT=_exit)
