"""How other apps use models: embeddings and chat completions, with usage recorded.

Through the gpu worker by default (the web process loads no model). Batch jobs that already
run in a Celery worker may embed in their own process instead (`in_process=True`): the model is
loaded once per worker process and reused, which saves a queue round trip per batch.
"""

from __future__ import annotations

import base64
import time
import uuid

import numpy as np

from inference import gateway
from inference.selectors import route_resolve


def embed_texts(*, texts: list[str], user_id: int, model: str = "embed-default", in_process: bool = False
                ) -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    route, specs = route_resolve(model=model, task="embed")
    if in_process:
        from inference.runtime import host
        from inference.services import usage_record_create
        from inference.worker import spec_config

        spec = specs[0]
        started = time.perf_counter()
        backend = host.loaded(spec.name) or host.get(spec_config(spec.name))
        vectors, tokens = backend.embed(texts)
        usage_record_create(request_id=f"embd-{uuid.uuid4().hex[:24]}", user_id=user_id, api_key_id=None,
                            spec_name=spec.name, route_alias=route, task="embed", prompt_tokens=tokens,
                            duration_ms=(time.perf_counter() - started) * 1000, worker="in-process")
        return vectors
    job = gateway.Job(request_id=gateway.request_id_new("embd"), task="embed", user_id=user_id, api_key_id=None,
                      route=route, payload={"input": texts})
    result = gateway.run(job, [spec.name for spec in specs])
    return np.stack([np.frombuffer(base64.b64decode(v), dtype="<f4") for v in result["embeddings"]])


def chat_complete(*, messages: list[dict[str, str]], user_id: int, model: str = "chat-default",
                  max_tokens: int = 512, temperature: float = 0.3) -> dict:
    """A whole (non-streamed) reply: {"text", "finish_reason", "usage", "spec"}."""
    route, specs = route_resolve(model=model, task="chat")
    job = gateway.Job(request_id=gateway.request_id_new("chatcmpl"), task="chat", user_id=user_id,
                      api_key_id=None, route=route,
                      payload={"messages": messages, "max_tokens": max_tokens, "temperature": temperature})
    return gateway.run(job, [spec.name for spec in specs])
