"""Stopping celery beat while it waits on PostgreSQL.

Celery's own SIGTERM handler saves the schedule from inside the handler. When the signal lands while the
main thread waits for a query, that save re-enters psycopg and waits forever for the connection's lock,
which the interrupted query holds: `systemctl stop`, Ctrl-C under `make run`, or a rolling deploy never
finishes. Parley's handler (config/celery.py) only asks beat to stop; the query is cancelled and the
schedule is saved on the main thread as the loop ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[1]


def _waiting_backends() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


def _beat(child_env, tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO",
         "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile", str(tmp_path / "beat.pid")],
        cwd=BASE_DIR, env=child_env, stdout=(tmp_path / "beat.log").open("w"), stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def test_sigterm_while_beat_waits_on_a_lock_stops_beat_once_the_lock_is_gone(child_env, tmp_path):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="beat-stop-probe", task="celery.backend_cleanup", interval=every_second,
                                queue="billing", enabled=True)
    beat = _beat(child_env, tmp_path)
    log = tmp_path / "beat.log"
    try:
        _wait_for(lambda: "Sending due task beat-stop-probe" in log.read_text(), "beat to send its first task")
        with transaction.atomic():
            # Another beat (or a migration) holds the change-tracking table: beat's next tick waits on it.
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE django_celery_beat_periodictasks IN ACCESS EXCLUSIVE MODE")
            _wait_for(lambda: _waiting_backends() >= 1, "beat to wait on the lock")
            beat.send_signal(signal.SIGTERM)
            time.sleep(1)  # the signal is handled while the query still waits
        # The lock is gone. A beat stuck inside its own signal handler never gets here.
        try:
            beat.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"beat did not stop after SIGTERM:\n{log.read_text()[-3000:]}")
    finally:
        if beat.poll() is None:
            beat.kill()
            beat.wait()
    assert beat.returncode == 0, log.read_text()[-3000:]
    # The schedule was saved on the way out: the next beat does not resend what this one sent.
    probe = PeriodicTask.objects.get(name="beat-stop-probe")
    assert probe.last_run_at is not None and probe.total_run_count >= 1
