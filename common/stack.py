"""Start Parley's processes as children: used by the test fixtures and the bench commands."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    detail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s\n{detail}")


def process_stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_start(*, env: dict[str, str], queues: str, hostname: str, log: Path, concurrency: int = 8
                 ) -> subprocess.Popen:
    """A Celery worker with a threads pool (as the `gpu` worker runs in production).

    More threads than the chat engine has slots: a request beyond them waits inside the worker,
    where it is told its place in line (`queued`), rather than unseen in the broker. The threads
    mostly wait on the engines, which release the GIL.
    """
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-n", hostname,
             "--pool=threads", f"--concurrency={concurrency}", "--prefetch-multiplier=1", "--without-mingle",
             "--without-gossip", "--loglevel=INFO"],
            cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def daphne_start(*, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
