"""Chat on llama.cpp's own `llama-server`: one managed subprocess per loaded model, on loopback.

llama-server batches continuously with per-request sampling, so requests at different temperatures
decode in the same step instead of taking turns (the CTranslate2 batcher has to stop and re-prefill to
mix them). Parley keeps what the server doesn't know about: a FIFO gate of `slots` requests, so a
request that waits for a slot learns its place in line, and cancellation by closing the connection,
which makes llama-server stop that slot at its next step.
"""

from __future__ import annotations

import collections
import ctypes
import http.client
import json
import logging
import os
import queue
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from inference.backends.base import Backend, BackendError, GenerationChunk, GenerationRequest
from inference.devices import cpu_threads

logger = logging.getLogger(__name__)

DEFAULT_SLOTS = 4
# A prompt is prefilled in pieces of this many tokens, and every piece shares a step with the other
# slots' decoding: small pieces keep a 1,000-token prompt from freezing everyone else's stream.
DEFAULT_BATCH = 256
LOAD_TIMEOUT = 120.0
# Idle slots' KV caches are kept in RAM up to this size so a returning conversation skips its prefill.
DEFAULT_CACHE_RAM_MIB = 512
STDERR_TAIL = 40
PR_SET_PDEATHSIG = 1
PRIO_PROCESS = 0
# llama-server runs this much nicer than the worker (PARLEY_ENGINE_NICE; 0 turns it off). On a CPU the engine
# keeps every core busy while it decodes; Parley's own steps between it and the client (the worker's event,
# Redis, Daphne) each wait for a core, a few milliseconds per hop when the scheduler lets the engine run its
# slice out. Niced, the engine gives way the moment one of them wakes, and loses next to nothing: they
# sleep almost all the time.
DEFAULT_NICE = int(os.environ.get("PARLEY_ENGINE_NICE", "5") or 0)


class _SlotGate:
    """At most `size` requests inside llama-server; the rest wait in arrival order and know their place."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.active = 0
        self.waiting: collections.deque[object] = collections.deque()
        self.cond = threading.Condition()

    def acquire(self, on_queued: Callable[[int], None], is_canceled: Callable[[], bool]) -> bool:
        """Wait for a slot; False if the request was canceled while waiting."""
        ticket = object()
        reported = None
        with self.cond:
            self.waiting.append(ticket)
            try:
                while True:
                    if self.waiting[0] is ticket and self.active < self.size:
                        self.waiting.popleft()
                        self.active += 1
                        # The next in line may also fit (several slots freed at once).
                        self.cond.notify_all()
                        return True
                    position = self.waiting.index(ticket) + 1
                    if position != reported:
                        reported = position
                        # Outside the lock: the callback publishes to Redis, and others must keep moving.
                        self.cond.release()
                        try:
                            on_queued(position)
                        finally:
                            self.cond.acquire()
                        continue
                    if is_canceled():
                        self.waiting.remove(ticket)
                        self.cond.notify_all()
                        return False
                    # A timeout as well as notify: is_canceled is a flag nobody signals us about.
                    self.cond.wait(timeout=0.2)
            except BaseException:
                if ticket in self.waiting:
                    self.waiting.remove(ticket)
                    self.cond.notify_all()
                raise

    def release(self) -> None:
        with self.cond:
            self.active -= 1
            self.cond.notify_all()


class _Spawner:
    """Starts child processes from one thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. Loads run in
    short-lived threads (admin reloads, the worker's loader), so forking there would kill the server
    as soon as its load finished.
    """

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.guard = threading.Lock()

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        with self.guard:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="llama-server-spawner", daemon=True)
                self.thread.start()
        done: queue.SimpleQueue = queue.SimpleQueue()
        self.jobs.put((args, kwargs, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        while True:
            args, kwargs, done = self.jobs.get()
            try:
                done.put((True, subprocess.Popen(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.put((False, exc))


_spawner = _Spawner()
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent_pid: int, nice: int = 0) -> Callable[[], None]:
    def preexec() -> None:
        # Only async-signal-safe work between fork and exec: prctl and setpriority through pointers resolved
        # before fork.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if nice:
            _libc.setpriority(PRIO_PROCESS, 0, nice)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServerChatBackend(Backend):
    task = "chat"

    process: subprocess.Popen | None = None

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        from inference.engines import EngineInstallError, llama_server_verify

        params = self.spec.params
        try:
            binary = llama_server_verify()
        except EngineInstallError as exc:
            raise BackendError(f"Cannot load {self.spec.name}: {exc}", code="load_failed") from exc
        gguf = Path(self.spec.path) if self.spec.path else None
        if gguf is None or not gguf.is_file():
            raise BackendError(f"Cannot load {self.spec.name}: the GGUF file {gguf} does not exist.",
                               code="load_failed")
        self.slots = int(params.get("slots") or DEFAULT_SLOTS)
        self.context_length = int(params.get("context_length", 2048))
        self.gate = _SlotGate(self.slots)
        self.api_key = secrets.token_urlsafe(24)
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        deadline = time.monotonic() + float(params.get("load_timeout", LOAD_TIMEOUT))
        # A free port can be taken between our check and the server's bind; then the server exits and we retry.
        for attempt in range(3):
            self.port = _free_port()
            self._start(binary, gguf, params)
            try:
                self._wait_healthy(deadline)
                break
            except BackendError:
                in_use = any("bind" in line.lower() or "address already in use" in line.lower()
                             for line in self.stderr_tail)
                self.unload()
                if not in_use or attempt == 2:
                    raise
        logger.info("llama-server for %s listening on 127.0.0.1:%d (pid %d, %d slots)",
                    self.spec.name, self.port, self.process.pid, self.slots)

    def _command(self, binary: Path, gguf: Path, params: dict[str, Any]) -> list[str]:
        batch = str(int(params.get("batch", DEFAULT_BATCH)))
        command = [
            str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port),
            "-t", str(cpu_threads()), "-np", str(self.slots), "-cb",
            # -c is the whole KV cache; with separate (non-unified) caches each slot gets c / np.
            "-c", str(self.context_length * self.slots), "--no-kv-unified",
            "-b", batch, "-ub", batch, "--no-webui", "--metrics", "--slots",
            "--cache-ram", str(int(params.get("cache_ram_mib", DEFAULT_CACHE_RAM_MIB))),
            "--alias", self.spec.name,
        ]
        if self.device == "cuda":
            command += ["-ngl", "99"]  # a CPU-only build ignores this with a warning
        return command

    def _start(self, binary: Path, gguf: Path, params: dict[str, Any]) -> None:
        self.stderr_tail.clear()
        env = {key: value for key, value in os.environ.items() if not key.startswith("LLAMA_ARG_")}
        # In the environment, not argv: argv is world-readable in /proc.
        env["LLAMA_API_KEY"] = self.api_key
        self.process = _spawner.popen(
            self._command(binary, gguf, params), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, text=True, errors="replace",
            preexec_fn=_die_with_parent(os.getpid(), int(params.get("nice", DEFAULT_NICE))),
        )
        threading.Thread(target=self._drain, args=(self.process,), name=f"llama-server-log-{self.spec.name}",
                         daemon=True).start()

    def _drain(self, process: subprocess.Popen) -> None:
        """Keep the last lines of the server's log for error messages; a full pipe would block the server."""
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            self.stderr_tail.append(line)
            # DEBUG only: the server logs its own request handling, which can name prompt sizes per user.
            logger.debug("llama-server %s: %s", self.spec.name, line)

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            if self.process.poll() is not None:
                time.sleep(0.1)  # let the log thread read the last lines
                if self.process.returncode == -signal.SIGILL:
                    raise BackendError(
                        f"llama-server for {self.spec.name} died of an illegal instruction: it was built for CPU "
                        "features this machine lacks. Rebuild it with `manage.py models_install --force-engine`.",
                        code="load_failed",
                    )
                raise BackendError(
                    f"llama-server for {self.spec.name} exited with code {self.process.returncode} while loading "
                    f"{self.spec.path}:\n" + "\n".join(list(self.stderr_tail)[-8:]),
                    code="load_failed",
                )
            try:
                status, _ = self._get("/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise BackendError(
                    f"llama-server for {self.spec.name} did not become ready in time:\n"
                    + "\n".join(list(self.stderr_tail)[-8:]),
                    code="load_failed",
                )
            time.sleep(0.1)

    def unload(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    # ------------------------------------------------------------------ HTTP

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def _get(self, path: str, timeout: float = 10) -> tuple[int, Any]:
        """GET a llama-server endpoint; the JSON body (or text for /metrics)."""
        conn = self._connection(timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.api_key}"})
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace")
            if response.getheader("Content-Type", "").startswith("application/json"):
                return response.status, json.loads(body or "null")
            return response.status, body
        finally:
            conn.close()

    def slots_busy(self) -> int:
        """How many of the server's slots are working on a request right now (from /slots)."""
        status, slots = self._get("/slots")
        if status != 200:
            raise BackendError(f"llama-server /slots answered {status}.", code="backend_error")
        return sum(1 for slot in slots if slot.get("is_processing"))

    # ------------------------------------------------------------------ generation

    def _messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        if not messages or messages[0].get("role") != "system":
            # Qwen's chat template inserts its own system message when none is given.
            system = self.spec.params.get("system_prompt", "You are a helpful assistant.")
            return [{"role": "system", "content": system}, *messages]
        return messages

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        params = self.spec.params
        body: dict[str, Any] = {
            "messages": self._messages(request.messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": True,
            # Timings on every chunk, so a canceled stream still knows what it cost.
            "timings_per_token": True,
            # Progress events during a long prefill, and pings otherwise: the stream never goes quiet for
            # long, so cancellation is noticed without a second thread.
            "return_progress": True,
            "sse_ping_interval": 1,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if request.stop:
            body["stop"] = [stop for stop in request.stop if stop]
        repeat_penalty = request.repeat_penalty or params.get("repeat_penalty")
        if repeat_penalty:
            body["repeat_penalty"] = float(repeat_penalty)
        for knob in ("repeat_last_n", "dry_multiplier", "dry_base", "dry_allowed_length", "dry_penalty_last_n",
                     "top_k", "min_p", "presence_penalty", "frequency_penalty"):
            if params.get(knob) is not None:
                body[knob] = params[knob]
        return body

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        if self.process is None or self.process.poll() is not None:
            raise BackendError(f"{self.spec.name} is not loaded.", code="model_unloaded")
        if not self.gate.acquire(request.on_queued, request.is_canceled):
            yield GenerationChunk("", "canceled", 0, 0, prompt_tokens_processed=0)
            return
        try:
            yield from self._stream(request)
        finally:
            self.gate.release()

    def _stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        # The timeout bounds one read, not the request: pings arrive every second while the server works.
        conn = self._connection(timeout=float(self.spec.params.get("read_timeout", 60)))
        completion, timings, usage, finish = 0, {}, {}, None
        try:
            try:
                conn.request("POST", "/v1/chat/completions", body=json.dumps(self._body(request)),
                             headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"})
                response = conn.getresponse()
            except OSError as exc:
                raise BackendError(f"llama-server for {self.spec.name} is unreachable: {exc}",
                                   code="backend_error") from exc
            if response.status != 200:
                self._raise_http_error(response)
            while True:
                if request.is_canceled():
                    finish = "canceled"
                    break
                line = response.readline()
                if not line:
                    break
                if not line.startswith(b"data: "):
                    continue  # blank separators and ": ping" comments
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    raise self._error(event["error"])
                timings = event.get("timings") or timings
                usage = event.get("usage") or usage
                for choice in event.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        completion += 1
                        yield GenerationChunk(text=text)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        except (OSError, http.client.HTTPException) as exc:
            if self.process is None or self.process.poll() is not None:
                raise BackendError(f"llama-server for {self.spec.name} stopped mid-reply.",
                                   code="backend_error") from exc
            raise BackendError(f"Reading from llama-server failed: {exc}", code="backend_error") from exc
        finally:
            # Closing the socket is how llama-server learns to stop the slot; after [DONE] it is just tidy.
            conn.close()
        prompt_processed = int(timings.get("prompt_n", 0))
        prompt_tokens = int(usage.get("prompt_tokens") or prompt_processed + int(timings.get("cache_n", 0)))
        completion_tokens = int(usage.get("completion_tokens") or timings.get("predicted_n") or completion)
        yield GenerationChunk("", finish or "stop", prompt_tokens, completion_tokens,
                              prompt_tokens_processed=prompt_processed)

    def _raise_http_error(self, response: http.client.HTTPResponse) -> None:
        body = response.read().decode("utf-8", "replace")
        try:
            error = json.loads(body).get("error") or {}
        except (ValueError, AttributeError):
            error = {"message": body[:500]}
        raise self._error(error, status=response.status)

    def _error(self, error: dict[str, Any], status: int | None = None) -> BackendError:
        if error.get("type") == "exceed_context_size_error":
            prompt = error.get("n_prompt_tokens")
            return BackendError(
                f"The conversation is {prompt} tokens; {self.spec.name} takes at most {self.context_length}. "
                "Shorten the messages.",
                code="context_length_exceeded", retryable=False,
            )
        if status == 400 or error.get("type") == "invalid_request_error":
            return BackendError(f"llama-server refused the request: {error.get('message', '')}",
                                code="invalid_request", retryable=False)
        return BackendError(f"llama-server error{f' {status}' if status else ''}: {error.get('message', '')}",
                            code="generation_failed")
