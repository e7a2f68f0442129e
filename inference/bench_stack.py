"""A private stack for the bench commands: a gpu worker and Daphne on their own Redis db."""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings

from common.stack import daphne_start, process_stop, wait_for, worker_start
from config import services

PROMPT = "Explain in a few sentences why the sky is blue."


def backend_direct(name: str):
    """The bare backend, loaded in this process: the baseline the stack is measured against."""
    from dataclasses import replace

    from inference.backends import backend_class
    from inference.runtime import host, source_resolve
    from inference.worker import spec_config

    spec = spec_config(name)
    backend = backend_class(spec.backend)(replace(spec, path=source_resolve(spec)), host.device)
    backend.load()
    return backend


def direct_generate(backend, max_tokens: int, messages: list[dict] | None = None) -> tuple[float, float, int]:
    """(ttft ms, tokens/s after the first, completion tokens) from the bare backend."""
    from inference.backends import GenerationRequest

    messages = messages or [{"role": "user", "content": PROMPT}]
    request = GenerationRequest(messages=messages, max_tokens=max_tokens, temperature=0)
    started = time.perf_counter()
    first = None
    for chunk in backend.generate(request):
        if chunk.text and first is None:
            first = time.perf_counter()
        if chunk.finish_reason:
            tokens = chunk.completion_tokens
    end = time.perf_counter()
    return (first - started) * 1000, (tokens - 1) / (end - first), tokens


class BenchStack:
    """A gpu worker and Daphne started for this run, on their own Redis db so nothing else interferes."""

    def __init__(self, *, models: list[str]) -> None:
        self.models = models

    def __enter__(self) -> BenchStack:
        from accounts.models import User
        from accounts.services import apikey_create, user_create

        user = User.objects.filter(email="bench@parley.localhost").first() or user_create(
            email="bench@parley.localhost")
        self.user = user
        self.api_key, self.key = apikey_create(user=user, name="bench")
        port = services._free_port()
        self.url = f"http://127.0.0.1:{port}"
        redis_url = settings.REDIS_URL.rsplit("/", 1)[0] + "/2"
        db = settings.DATABASES["default"]
        env = dict(os.environ, REDIS_URL=redis_url, PYTHONUNBUFFERED="1", PARLEY_WORKER_MODELS=",".join(self.models),
                   DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.dev"),
                   PARLEY_USER_RPM="100000", PARLEY_USER_TOKENS_PER_DAY="100000000")
        if not os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = f"postgres://{db['USER']}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}"
        self.tmp = tempfile.TemporaryDirectory()
        logs = Path(self.tmp.name)
        self.worker = worker_start(env=env, queues="gpu", hostname=f"bench-{os.getpid()}@localhost",
                                   log=logs / "worker.log", concurrency=8)
        self.web = daphne_start(env=env, port=port, log=logs / "web.log")
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)

        def model_loaded() -> bool:
            for key in client.scan_iter("parley:worker:bench-*"):
                held = json.loads(client.get(key) or "{}").get("models", {})
                if all(held.get(name, {}).get("state") == "loaded" for name in self.models):
                    return True
            return False

        wait_for(model_loaded, timeout=180, what="the bench worker", log=logs / "worker.log")
        wait_for(lambda: services.port_in_use(port), timeout=60, what="Daphne", log=logs / "web.log")
        return self

    def __exit__(self, *exc: object) -> None:
        from accounts.services import apikey_revoke

        process_stop(self.web)
        process_stop(self.worker)
        apikey_revoke(api_key=self.api_key)
        self.tmp.cleanup()

    def stream(self, model: str, max_tokens: int) -> tuple[float, float, int]:
        """(ttft ms, tokens/s after the first, completion tokens) for one streamed request."""
        parsed = urlparse(self.url)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=300)
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
                           "max_tokens": max_tokens, "temperature": 0, "stream_options": {"include_usage": True}})
        started = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        first, tokens = None, 0
        for line in response:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content") and first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        conn.close()
        return (first - started) * 1000, (tokens - 1) / (end - first), tokens

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
