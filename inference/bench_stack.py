"""A private stack for the bench commands (a gpu worker and Daphne on their own Redis db), and the
clients that time requests through it: `/v1` SSE, the chat WebSocket and knowledge answers.

How the clients count (the same for Parley and for the llama-server peer):
- TTFT is from sending the request to the first chunk that carries reply text.
- Decode tokens/s is the server's own `usage.completion_tokens`, less the first token, over the time from
  the first to the last text chunk. SSE chunks are not tokens: the worker coalesces deltas (at most one
  message per 15 ms, inference.streaming), and a token can be split over chunks, so a chunk count is
  neither the token count nor a bound on it. A rate taken over the whole request (TTFT included) is the
  end-to-end rate, reported separately as such.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from django.conf import settings

from common.heartbeat import KEY_PREFIX as HEARTBEAT_PREFIX
from common.stack import daphne_start, process_stop, wait_for, worker_start
from config import services

logger = logging.getLogger(__name__)

PROMPT = "Explain in a few sentences why the sky is blue."
# Bounds on one request: a stalled server fails the request, never the whole bench.
REQUEST_TIMEOUT = 180.0


def backend_direct(name: str) -> Any:
    """The bare backend, loaded in this process (the audio and embedding figures use it; chat uses
    inference.bench_direct, a process of its own)."""
    from dataclasses import replace

    from inference.backends import backend_class
    from inference.runtime import host, source_resolve
    from inference.worker import spec_config

    spec = spec_config(name)
    backend = backend_class(spec.backend)(replace(spec, path=source_resolve(spec)), host.device)
    backend.load()
    return backend


def child_env(**extra: str) -> dict[str, str]:
    """Environment for the processes a bench starts: this process's database (the test one under pytest)."""
    db = settings.DATABASES["default"]
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.dev"))
    if not os.environ.get("DATABASE_URL") or db["NAME"] not in os.environ["DATABASE_URL"]:
        env["DATABASE_URL"] = f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}"
    env.update(extra)
    return env


@dataclass
class StreamResult:
    """What a client saw of one streamed reply; times are time.perf_counter() values."""

    started: float
    first: float | None = None
    last: float | None = None
    end: float | None = None
    tokens: int = 0  # the server's usage.completion_tokens
    prompt_tokens: int = 0
    processed: int | None = None  # prompt tokens the engine computed, when it says
    chunks: int = 0  # chunks (SSE events or WebSocket frames) that carried text
    max_gap_ms: float = 0.0  # longest wait between two text chunks
    queued: int = 0  # highest queue position announced
    text: str = ""
    request_id: str = ""
    message_id: int | None = None
    error: str = ""
    # False for knowledge answers: the client sees only the whole reply, the worker's usage row has its TTFT.
    streamed: bool = True
    worker_ttft_ms: float | None = None
    chunk_times: list[float] = field(default_factory=list)  # arrival of each text chunk
    extra: dict[str, Any] = field(default_factory=dict)

    def delta(self, now: float, text: str) -> None:
        self.chunk_times.append(now)
        if self.first is None:
            self.first = now
        else:
            self.max_gap_ms = max(self.max_gap_ms, (now - self.last) * 1000)
        self.last = now
        self.chunks += 1
        self.text += text

    @property
    def ok(self) -> bool:
        return not self.error and (self.first is not None or not self.streamed)

    @property
    def ttft_ms(self) -> float:
        """The client's TTFT; for a non-streamed reply, the worker's (from its usage row) if known."""
        if self.first is not None:
            return (self.first - self.started) * 1000
        return self.worker_ttft_ms if self.worker_ttft_ms is not None else float("nan")

    @property
    def decode_tps(self) -> float:
        if self.first is None or self.last is None or self.tokens < 2 or self.last <= self.first:
            return float("nan")
        return (self.tokens - 1) / (self.last - self.first)

    @property
    def chunk_rate(self) -> float:
        """Text chunks per second after the first: what a client counting SSE chunks as tokens reports."""
        if self.first is None or self.last is None or self.chunks < 2 or self.last <= self.first:
            return float("nan")
        return (self.chunks - 1) / (self.last - self.first)

    @property
    def e2e_tps(self) -> float:
        """completion tokens over the whole request, TTFT included."""
        end = self.end or self.last
        return self.tokens / (end - self.started) if end and end > self.started else float("nan")


def sse_chat(base_url: str, body: dict[str, Any], *, key: str = "", path: str = "/v1/chat/completions",
             timeout: float = REQUEST_TIMEOUT) -> StreamResult:
    """One streamed OpenAI chat completion (Parley's /v1 or llama-server's own), timed."""
    parsed = urlparse(base_url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})
    result = StreamResult(started=time.perf_counter())
    try:
        conn.request("POST", path, body=payload, headers=headers)
        response = conn.getresponse()
        if response.status != 200:
            result.error = f"HTTP {response.status}: {_body_summary(response.read())}"
            return result
        for line in response:
            if line.startswith(b": queued"):
                result.queued = max(result.queued, int(line.split()[-1]))
                continue
            if line.startswith(b"data: [DONE]"):
                break
            if not line.startswith(b"data: "):
                continue
            now = time.perf_counter()
            chunk = json.loads(line[6:])
            if "error" in chunk:
                result.error = chunk["error"].get("message", "error")
                break
            result.request_id = result.request_id or chunk.get("id", "")
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    result.delta(now, text)
            if chunk.get("usage"):
                result.tokens = int(chunk["usage"].get("completion_tokens") or 0)
                result.prompt_tokens = int(chunk["usage"].get("prompt_tokens") or 0)
            if chunk.get("timings"):  # llama-server's own: prompt_n is what it really computed
                result.processed = int(chunk["timings"].get("prompt_n") or 0)
                result.extra["timings"] = chunk["timings"]
    except (OSError, http.client.HTTPException, ValueError) as exc:
        result.error = f"{exc.__class__.__name__}: {exc}"
    finally:
        result.end = time.perf_counter()
        conn.close()
    if not result.error and result.first is None:
        result.error = "the reply had no text"
    return result


def _body_summary(body: bytes) -> str:
    """An error body for a one-line message: an HTML page's title, else the start of the text."""
    text = body.decode("utf-8", "replace")
    if "<title>" in text:
        return text.split("<title>", 1)[1].split("</title>", 1)[0].strip() + " (an HTML error page)"
    return text[:300]


def _exit_on_sigterm() -> None:
    """`kill <bench>` unwinds like Ctrl-C, so the worker, Daphne and llama-server it started stop with it
    (left running, they hold both cores and spoil every later measurement)."""
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


class BenchStack:
    """A gpu worker and Daphne started for this run, on their own Redis db so nothing else interferes."""

    def __init__(self, *, models: list[str], redis_db: int = 2, worker_concurrency: int = 8) -> None:
        self.models = models
        self.redis_db = redis_db
        self.worker_concurrency = worker_concurrency
        self.errors_seen = 0  # requests that failed; a run with any keeps the logs
        self.kept_logs: Path | None = None

    def __enter__(self) -> BenchStack:
        import redis

        _exit_on_sigterm()

        from accounts.models import User
        from accounts.services import apikey_create, user_create

        user = User.objects.filter(email="bench@parley.localhost").first() or user_create(
            email="bench@parley.localhost")
        self.user = user
        self.api_key, self.key = apikey_create(user=user, name="bench", enforce_plan=False)
        port = services._free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + f"/{self.redis_db}"
        env = child_env(REDIS_URL=self.redis_url, PARLEY_WORKER_MODELS=",".join(self.models),
                        # The bench measures speed, not plans: its user gets these limits and every model.
                        PARLEY_PLANS_ENFORCED="false", PARLEY_USER_RPM="100000",
                        PARLEY_USER_TOKENS_PER_DAY="100000000", PARLEY_USER_MAX_TOKENS_PER_REPLY="100000")
        self.tmp = tempfile.TemporaryDirectory()
        self.logs = Path(self.tmp.name)
        self.redis = redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)
        hostname = self.hostname = f"bench-{os.getpid()}@localhost"
        # A worker of anyone else on this db (a test run with PARLEY_TEST_REDIS_DB set to it, another bench)
        # would take our jobs and hand us theirs.
        if others := self.foreign_workers():
            raise RuntimeError(f"Redis db {self.redis_db} is in use by other workers ({', '.join(others)}); "
                               "run the bench on another one with --redis-db N.")
        self.worker = worker_start(env=env, queues="gpu", hostname=hostname,
                                   log=self.logs / "worker.log", concurrency=self.worker_concurrency)
        self.web = daphne_start(env=env, port=port, log=self.logs / "web.log")

        def model_loaded() -> bool:
            # Our worker's own heartbeat: a dead earlier bench worker's key can linger for its TTL.
            held = json.loads(self.redis.get(HEARTBEAT_PREFIX + hostname) or "{}").get("models", {})
            failed = [n for n in self.models if held.get(n, {}).get("state") == "failed"]
            if failed:
                raise RuntimeError(f"the bench worker could not load {failed[0]}: {held[failed[0]].get('error')}")
            return all(held.get(name, {}).get("state") == "loaded" for name in self.models)

        try:
            wait_for(model_loaded, timeout=300, what="the bench worker", log=self.logs / "worker.log")
            wait_for(lambda: services.port_in_use(port), timeout=60, what="Daphne", log=self.logs / "web.log")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, exc_type: type | None = None, *exc: object) -> None:
        from accounts.services import apikey_revoke

        process_stop(self.web)
        process_stop(self.worker)
        apikey_revoke(api_key=self.api_key)
        if exc_type is not None or self.errors_seen:
            # Keep the worker's and Daphne's logs of a failed run: they hold the tracebacks.
            kept = Path(tempfile.mkdtemp(prefix="parley-bench-logs-"))
            for log in self.logs.glob("*.log"):
                shutil.copy2(log, kept / log.name)
            logger.warning("bench stack logs kept in %s", kept)
            self.kept_logs = kept
        self.tmp.cleanup()

    def foreign_workers(self) -> list[str]:
        """Live workers on this Redis db other than ours (heartbeats expire a few seconds after death)."""
        ours = HEARTBEAT_PREFIX + getattr(self, "hostname", "")
        return sorted(key.removeprefix(HEARTBEAT_PREFIX) for key in self.redis.scan_iter(HEARTBEAT_PREFIX + "*")
                      if key != ours)

    # ------------------------------------------------------------------ clients

    def stream(self, model: str, max_tokens: int, messages: list[dict[str, str]] | None = None,
               temperature: float = 0.0, key: str = "") -> StreamResult:
        """One streamed /v1 chat completion, timed (see the module docstring for how it counts)."""
        body = {"model": model, "messages": messages or [{"role": "user", "content": PROMPT}],
                "max_tokens": max_tokens, "temperature": temperature}
        return sse_chat(self.url, body, key=key or self.key)

    def outcome(self, request_id: str) -> dict[str, Any] | None:
        """The worker's last word on a chat request (usage with prompt_tokens_processed), from the stack's
        Redis db; inference.services.job_outcome reads this process's db, not the bench stack's."""
        from inference.tasks import OUTCOME_PREFIX

        raw = self.redis.get(OUTCOME_PREFIX + request_id)
        return json.loads(raw) if raw else None

    def processed_fill(self, result: StreamResult) -> None:
        """Fill in prompt_tokens_processed (and prompt tokens) from the worker's outcome when the client
        did not see them (/v1's usage chunk has the OpenAI fields only)."""
        if result.processed is not None or not result.request_id:
            return
        outcome = self.outcome(result.request_id) or {}
        usage = outcome.get("usage") or {}
        if usage.get("prompt_tokens_processed") is not None:
            result.processed = int(usage["prompt_tokens_processed"])
        result.prompt_tokens = result.prompt_tokens or int(usage.get("prompt_tokens") or 0)

    def session_cookie(self) -> str:
        """A logged-in session for the bench user, for the WebSocket benchmarks."""
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore

        store = SessionStore()
        store[SESSION_KEY] = str(self.user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = self.user.get_session_auth_hash()
        store.create()
        return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"

    def ws_turn(self, conversation_id: int, text: str, cookie: str, timeout: float = REQUEST_TIMEOUT
                ) -> StreamResult:
        """One chat turn over `ws/chat/<id>/`, timed from sending the message to the first `delta` frame."""
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        url = self.url.replace("http://", "ws://") + f"/ws/chat/{conversation_id}/"
        deadline = time.monotonic() + timeout
        result = StreamResult(started=time.perf_counter())
        try:
            with connect(url, additional_headers={"Cookie": cookie, "Origin": self.url}, open_timeout=30,
                         close_timeout=5) as socket:
                result.started = time.perf_counter()
                socket.send(json.dumps({"type": "user_message", "text": text}))
                done = None
                while time.monotonic() < deadline:
                    # After `done`, `metrics` follows at once; don't wait long for it if it doesn't.
                    wait = 5.0 if done is not None else max(0.1, deadline - time.monotonic())
                    try:
                        frame = json.loads(socket.recv(timeout=wait))
                    except TimeoutError:
                        if done is not None:
                            break
                        raise
                    now = time.perf_counter()
                    kind = frame.get("type")
                    if kind == "start":
                        result.request_id = frame.get("request_id", "")
                        result.message_id = frame.get("message_id")
                    elif kind == "delta":
                        result.delta(now, frame.get("text", ""))
                    elif kind == "queued":
                        result.queued = max(result.queued, int(frame.get("position") or 0))
                    elif kind == "done":
                        done, result.end = frame, now
                        usage = frame.get("usage") or {}
                        result.tokens = int(usage.get("completion_tokens") or 0)
                        result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                        if usage.get("prompt_tokens_processed") is not None:
                            result.processed = int(usage["prompt_tokens_processed"])
                    elif kind == "metrics":
                        result.tokens = result.tokens or int(frame.get("completion_tokens") or 0)
                        break
                    elif kind == "error":
                        result.error = f"{frame.get('code')}: {frame.get('message')}"
                        break
                else:
                    result.error = f"no reply within {timeout:.0f} s"
        except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
            result.error = result.error or f"{exc.__class__.__name__}: {exc}"
        result.end = result.end or time.perf_counter()
        if not result.error and result.first is None:
            result.error = "the reply had no text"
        return result

    def knowledge_answer(self, query: str, *, key: str, max_tokens: int, model: str = "chat-default",
                         timeout: float = REQUEST_TIMEOUT) -> StreamResult:
        """`POST /api/knowledge/query` with answer=true: not streamed, so only the whole latency is seen here
        (the worker's TTFT comes from its usage row)."""
        parsed = urlparse(self.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
        result = StreamResult(started=time.perf_counter(), streamed=False)
        try:
            conn.request("POST", "/api/knowledge/query", body=json.dumps(
                {"query": query, "answer": True, "max_tokens": max_tokens, "model": model}),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            result.end = time.perf_counter()
            if response.status != 200:
                result.error = f"HTTP {response.status}: {_body_summary(body)}"
            else:
                data = json.loads(body)
                result.text = data.get("answer") or ""
                if not data.get("model"):
                    result.error = "no passage matched, so no model answered"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result.error = f"{exc.__class__.__name__}: {exc}"
        finally:
            result.end = result.end or time.perf_counter()
            conn.close()
        return result
