"""Locust users for `manage.py bench_load` (run by it as `locust -f common/loadtest.py`; not imported by Django).

- `ChatSocketUser`: a signed-in person holding `ws/chat/<id>/` open for the whole run. Every 20–40 s
  it sends a message and reads the reply to the end; a ping every few seconds measures ping→pong,
  split by whether any reply was being generated at that moment. A socket that closes while the
  user still wants it is a drop; the user reconnects as the page does.
- `ApiStreamUser`: an integration streaming `/v1/chat/completions` with an API key.

Time to first token is measured at the client, from sending to the first token, so it includes the
time spent queued. Everything lands in the JSON file named by PARLEY_LOAD_OUT when Locust quits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import time

import gevent
import websocket
from gevent.queue import Empty, Queue
from locust import HttpUser, User, between, events, task

CONFIG = json.loads(open(os.environ["PARLEY_LOAD_CONFIG"]).read()) if os.environ.get("PARLEY_LOAD_CONFIG") else {}
THINK = (CONFIG.get("think_min", 20), CONFIG.get("think_max", 40))
REPLY_TIMEOUT = CONFIG.get("reply_timeout", 600)
PING_EVERY = CONFIG.get("ping_every", 5)
QUESTIONS = [
    "In one sentence, why is the sky blue?",
    "Give me two tips for a good night's sleep, briefly.",
    "What is a prime number? Answer in one sentence.",
    "Name three rivers in Europe.",
    "In one short sentence, what does a lighthouse do?",
    "How many minutes are in a day? Answer briefly.",
]

RESULTS: dict[str, list] = {key: [] for key in (
    "ttft_ms", "server_ttft_ms", "tokens_per_s", "completion_tokens", "ping_busy_ms", "ping_idle_ms",
    "api_ttft_ms", "api_tokens_per_s", "api_completion_tokens", "error_codes")}
COUNTS = {key: 0 for key in ("turns_sent", "turns_done", "turns_failed", "socket_errors", "drops", "reconnects",
                             "api_sent", "api_done", "api_failed")}
GENERATING = {"count": 0}
_sessions = itertools.count()
_api_keys = itertools.count()


def _fire(name: str, started: float, *, length: int = 0, exception: Exception | None = None) -> None:
    events.request.fire(request_type="WS" if name.startswith("chat") else "SSE", name=name,
                        response_time=(time.perf_counter() - started) * 1000, response_length=length,
                        exception=exception, context={})


class ChatSocketUser(User):
    fixed_count = CONFIG.get("socket_users", 0)
    wait_time = between(*THINK)

    def on_start(self) -> None:
        session = CONFIG["sessions"][next(_sessions) % len(CONFIG["sessions"])]
        self.url = f"{CONFIG['ws_base']}/ws/chat/{session['conversation_id']}/"
        self.cookie = session["cookie"]
        self.frames: Queue = Queue()
        self.pings: list[float] = []
        self.stopping = False
        self._connect()
        self.pinger = gevent.spawn(self._ping_loop)
        # Stagger the first message over the think window, as people don't all type at once.
        gevent.sleep(random.uniform(0, THINK[1]))

    def _connect(self) -> None:
        self.socket = websocket.create_connection(self.url, header=[f"Cookie: {self.cookie}"],
                                                  origin=CONFIG["http_base"], timeout=None)
        self.pings = []
        self.reader = gevent.spawn(self._read_loop, self.socket)

    def _read_loop(self, sock) -> None:
        while True:
            try:
                raw = sock.recv()
            except Exception:  # noqa: BLE001 - closed or broken: a drop unless we are the ones stopping
                raw = None
            if not raw:
                if not self.stopping and sock is self.socket:
                    COUNTS["drops"] += 1
                    self.frames.put({"type": "_closed"})
                return
            frame = json.loads(raw)
            if frame["type"] == "pong" and self.pings:
                sent, busy = self.pings.pop(0)
                RESULTS["ping_busy_ms" if busy else "ping_idle_ms"].append((time.perf_counter() - sent) * 1000)
            else:
                self.frames.put(frame)

    def _ping_loop(self) -> None:
        while not self.stopping:
            gevent.sleep(PING_EVERY * random.uniform(0.8, 1.2))
            try:
                self.pings.append((time.perf_counter(), GENERATING["count"] > 0))
                self.socket.send(json.dumps({"type": "ping"}))
            except Exception:  # noqa: BLE001 - the socket is down; the reader counts the drop
                self.pings.pop()

    def _reconnect(self) -> None:
        for attempt in range(10):
            gevent.sleep(min(0.5 * 2 ** attempt, 10))
            try:
                self._connect()
                COUNTS["reconnects"] += 1
                return
            except Exception:  # noqa: BLE001 - still down; keep backing off like the page does
                continue

    @task
    def turn(self) -> None:
        started = time.perf_counter()
        first = None
        COUNTS["turns_sent"] += 1
        GENERATING["count"] += 1
        try:
            self.socket.send(json.dumps({"type": "user_message", "text": random.choice(QUESTIONS)}))
            deadline = started + REPLY_TIMEOUT
            while True:
                try:
                    frame = self.frames.get(timeout=max(0.1, deadline - time.perf_counter()))
                except Empty:
                    raise TimeoutError(f"no reply within {REPLY_TIMEOUT} s") from None
                kind = frame["type"]
                if kind == "delta" and first is None:
                    first = time.perf_counter()
                    RESULTS["ttft_ms"].append((first - started) * 1000)
                elif kind == "error":
                    COUNTS["socket_errors"] += 1
                    RESULTS["error_codes"].append(frame.get("code", "?"))
                    raise RuntimeError(frame.get("message", "error frame"))
                elif kind == "_closed":
                    raise ConnectionError("socket closed mid-reply")
                elif kind == "metrics":
                    COUNTS["turns_done"] += 1
                    RESULTS["completion_tokens"].append(frame.get("completion_tokens") or 0)
                    if frame.get("tokens_per_s"):
                        RESULTS["tokens_per_s"].append(frame["tokens_per_s"])
                    if frame.get("ttft_ms"):
                        RESULTS["server_ttft_ms"].append(frame["ttft_ms"])
                    _fire("chat turn", started, length=frame.get("completion_tokens") or 0)
                    return
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported, never raised
            COUNTS["turns_failed"] += 1
            _fire("chat turn", started, exception=exc)
            if isinstance(exc, ConnectionError):
                self._reconnect()
        finally:
            GENERATING["count"] -= 1

    def on_stop(self) -> None:
        self.stopping = True
        self.pinger.kill(block=False)
        with contextlib.suppress(Exception):  # already closed
            self.socket.close()


class ApiStreamUser(HttpUser):
    fixed_count = CONFIG.get("api_users", 0)
    wait_time = between(*THINK)

    def on_start(self) -> None:
        self.key = CONFIG["api_keys"][next(_api_keys) % len(CONFIG["api_keys"])]
        gevent.sleep(random.uniform(0, THINK[1]))

    @task
    def stream(self) -> None:
        started = time.perf_counter()
        first, tokens, failed = None, 0, None
        COUNTS["api_sent"] += 1
        GENERATING["count"] += 1
        body = {"model": "chat-default", "stream": True, "max_tokens": CONFIG.get("max_tokens", 96),
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": random.choice(QUESTIONS)}]}
        try:
            with self.client.post("/v1/chat/completions", json=body, stream=True, catch_response=True,
                                  headers={"Authorization": f"Bearer {self.key}"}, name="/v1 stream",
                                  timeout=REPLY_TIMEOUT) as response:
                if response.status_code != 200:
                    failed = f"HTTP {response.status_code}"
                else:
                    for line in response.iter_lines():
                        if not line.startswith(b"data: ") or line == b"data: [DONE]":
                            continue
                        chunk = json.loads(line[6:])
                        if "error" in chunk:
                            failed = chunk["error"].get("code") or "error"
                            break
                        if chunk.get("usage"):
                            tokens = chunk["usage"]["completion_tokens"]
                        elif chunk["choices"] and chunk["choices"][0]["delta"].get("content") and first is None:
                            first = time.perf_counter()
                if failed:
                    response.failure(failed)
                else:
                    response.success()
        except Exception as exc:  # noqa: BLE001 - counted as a failed stream
            failed = str(exc) or exc.__class__.__name__
        finally:
            GENERATING["count"] -= 1
        end = time.perf_counter()
        if failed or first is None:
            COUNTS["api_failed"] += 1
            RESULTS["error_codes"].append(f"v1: {failed or 'no tokens'}")
            return
        COUNTS["api_done"] += 1
        RESULTS["api_ttft_ms"].append((first - started) * 1000)
        RESULTS["api_completion_tokens"].append(tokens)
        if tokens > 1 and end > first:
            RESULTS["api_tokens_per_s"].append((tokens - 1) / (end - first))


@events.quitting.add_listener
def _write_results(environment, **kwargs) -> None:
    if os.environ.get("PARLEY_LOAD_OUT"):
        with open(os.environ["PARLEY_LOAD_OUT"], "w") as out:
            json.dump({"results": RESULTS, "counts": COUNTS}, out)
