"""The benches' fair baseline: the bare backend in a process of its own, loaded as the gpu worker loads it.

An in-process baseline shared the bench's interpreter with Django, the HTTP client threads and the GIL,
and decoded slower than the dedicated worker, so "delivered ÷ direct" read above 1. This child runs
nothing but the backend, with the worker's thread settings (`PARLEY_CPU_THREADS`, `cpu_threads()`):

    python -m inference.bench_direct --spec qwen2.5-coder-0.5b

It prints one JSON line when loaded, then answers each JSON request line on stdin
({"messages", "max_tokens", "temperature"}) with one JSON result line; EOF ends it.
`DirectProcess` is the parent's side. `PeerServer` is the other reference: llama.cpp's own llama-server
on the same GGUF, started by the bench with stock flags, which Parley is compared against.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

BASE_DIR = Path(__file__).resolve().parent.parent
# Bounds: the first load can prepare weights; one reply is at most a few hundred tokens.
LOAD_TIMEOUT = 300.0
REPLY_TIMEOUT = 180.0


def generate_timed(backend: Any, messages: list[dict[str, str]], max_tokens: int, temperature: float
                   ) -> dict[str, Any]:
    """Time one reply from a loaded backend as the worker's loop sees it (first text chunk = first token)."""
    from inference.backends import GenerationRequest

    request = GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=temperature)
    started = time.perf_counter()
    first = last = None
    max_gap = 0.0
    text: list[str] = []
    final = None
    for chunk in backend.generate(request):
        now = time.perf_counter()
        if chunk.text:
            if first is None:
                first = now
            else:
                max_gap = max(max_gap, now - last)
            last = now
            text.append(chunk.text)
        if chunk.finish_reason:
            final = chunk
    if first is None or final is None:
        raise RuntimeError("the backend produced no text")
    tokens = final.completion_tokens
    # Decode rate between the first and the last token: the tokens after the first, over the time they took.
    decode = (tokens - 1) / (last - first) if tokens > 1 and last > first else float("nan")
    return {
        "ttft_ms": (first - started) * 1000, "decode_tps": decode, "completion_tokens": tokens,
        "prompt_tokens": final.prompt_tokens, "prompt_tokens_processed": final.prompt_tokens_processed,
        "max_gap_ms": max_gap * 1000, "chunks": len(text), "text": "".join(text),
        "duration_ms": (time.perf_counter() - started) * 1000,
    }


class DirectProcess:
    """The parent's handle on a `python -m inference.bench_direct` child: start, ask, stop."""

    def __init__(self, spec: str, *, env: dict[str, str], log: Path) -> None:
        self.spec, self.env, self.log = spec, env, log
        self.process: subprocess.Popen | None = None
        self.ready: dict[str, Any] = {}
        self._lines: list[str] = []
        self._cv = threading.Condition()

    def __enter__(self) -> DirectProcess:
        from inference.devices import cpu_threads

        # The worker's thread count, stated explicitly so the child cannot pick up another default.
        env = dict(self.env, PARLEY_CPU_THREADS=str(cpu_threads()), PYTHONUNBUFFERED="1")
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "inference.bench_direct", "--spec", self.spec], cwd=BASE_DIR, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            )
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()
        try:
            self.ready = self._next(LOAD_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.stdin.close()  # EOF: the child unloads its backend and exits
            process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cv:
                self._lines.append(line)
                self._cv.notify_all()
        with self._cv:
            self._lines.append("")  # EOF marker
            self._cv.notify_all()

    def _next(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not self._lines:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"the direct {self.spec} process did not answer in {timeout:.0f} s; "
                                       f"see {self.log}:\n{self._log_tail()}")
                self._cv.wait(left)
            line = self._lines.pop(0)
        if not line:
            raise RuntimeError(f"the direct {self.spec} process exited; its log:\n{self._log_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the direct {self.spec} process failed: {reply['error']}")
        return reply

    def _log_tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def generate(self, messages: list[dict[str, str]], max_tokens: int, temperature: float = 0.0
                 ) -> dict[str, Any]:
        """One timed reply: ttft_ms, decode_tps, completion_tokens, prompt tokens, max_gap_ms, text."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps({"messages": messages, "max_tokens": max_tokens,
                                             "temperature": temperature}) + "\n")
        self.process.stdin.flush()
        return self._next(REPLY_TIMEOUT)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # The peer must not outlive a bench that crashed; started from the main thread, so the signal
    # fires only when this process ends.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class PeerServer:
    """llama-server on the same GGUF, `-t <threads> -np 4 -cb`, on a free loopback port, for the peer row.

    Stock flags except `-c 8192` (2,048 tokens per slot, so the 1,000-token prompts fit however the build
    splits its cache) and `--metrics` (the prompt-token counters)."""

    def __init__(self, binary: Path, gguf: Path, *, log: Path, threads: int, slots: int = 4,
                 context: int = 8192) -> None:
        self.binary, self.gguf, self.log = binary, gguf, log
        self.threads, self.slots, self.context = threads, slots, context
        self.process: subprocess.Popen | None = None

    @property
    def command(self) -> list[str]:
        return [str(self.binary), "-m", str(self.gguf), "--host", "127.0.0.1", "--port", str(self.port),
                "-t", str(self.threads), "-np", str(self.slots), "-cb", "-c", str(self.context), "--metrics"]

    def __enter__(self) -> PeerServer:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_")}  # stock settings only
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if self._get("/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        tail = self.log.read_text()[-2000:]
        self.__exit__()
        raise RuntimeError(f"the peer llama-server did not become ready: {' '.join(self.command)}\n{tail}")

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _get(self, path: str) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def metrics(self) -> dict[str, float]:
        """llama-server's Prometheus counters (`llamacpp:prompt_tokens_total`, ...)."""
        status, text = self._get("/metrics")
        if status != 200:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name.strip()] = float(value)
                except ValueError:
                    continue
        return out


def _requests(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for line in stream:
        if line.strip():
            yield json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="The ModelSpec to load, as the worker would.")
    args = parser.parse_args()
    # The protocol owns the real stdout; anything a library prints (C or Python) goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    import django

    django.setup()
    from django.db import connections

    from inference.devices import cpu_threads
    from inference.runtime import ModelHost
    from inference.worker import spec_config

    started = time.perf_counter()
    host = ModelHost()
    try:
        spec = spec_config(args.spec)
        backend = host.load(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises with the log
        protocol.write(json.dumps({"error": f"{exc.__class__.__name__}: {exc}"}) + "\n")
        return
    connections.close_all()  # nothing else needs the database; don't hold a connection while timing
    protocol.write(json.dumps({"ready": True, "spec": spec.name, "backend": spec.backend, "threads": cpu_threads(),
                               "device": host.device, "load_s": time.perf_counter() - started}) + "\n")
    try:
        for request in _requests(sys.stdin):
            try:
                result = generate_timed(backend, request["messages"], int(request["max_tokens"]),
                                        float(request.get("temperature", 0.0)))
            except Exception as exc:  # noqa: BLE001 - one failed request is the parent's to report
                result = {"error": f"{exc.__class__.__name__}: {exc}"}
            protocol.write(json.dumps(result) + "\n")
    finally:
        host.unload(spec.name)


if __name__ == "__main__":
    main()
