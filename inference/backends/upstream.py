"""Forward to any OpenAI-compatible server (vLLM, Ollama, a hosted API) named in the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from inference.backends.base import Backend, BackendError, GenerationChunk, GenerationRequest


class OpenAIUpstreamBackend(Backend):
    task = "chat"

    def load(self) -> None:
        import openai

        base_url = self.spec.params.get("base_url") or os.environ.get("PARLEY_UPSTREAM_BASE_URL", "")
        if not base_url:
            raise BackendError(
                f"{self.spec.name} forwards to an upstream server, but no base URL is set: set "
                "PARLEY_UPSTREAM_BASE_URL or params.base_url.", code="load_failed",
            )
        key_env = self.spec.params.get("api_key_env", "PARLEY_UPSTREAM_API_KEY")
        self.client = openai.OpenAI(
            base_url=base_url, api_key=os.environ.get(key_env) or "none",
            timeout=float(self.spec.params.get("timeout", 60)), max_retries=0,
        )
        self.model_name = self.spec.source

    def unload(self) -> None:
        self.client = None

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        import openai

        try:
            stream = self.client.chat.completions.create(
                model=self.model_name, messages=request.messages, max_tokens=request.max_tokens,
                temperature=request.temperature, top_p=request.top_p, stop=request.stop or None, stream=True,
                stream_options={"include_usage": True},
            )
            usage, reason = None, "stop"
            for chunk in stream:
                if request.is_canceled():
                    stream.close()
                    reason = "canceled"
                    break
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield GenerationChunk(text=choice.delta.content)
                    if choice.finish_reason:
                        reason = choice.finish_reason
        except openai.APIError as exc:
            raise BackendError(f"Upstream {self.model_name} failed: {exc}", code="upstream_error") from exc
        yield GenerationChunk(
            "", reason, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0
        )

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        import openai

        try:
            response = self.client.embeddings.create(model=self.model_name, input=texts)
        except openai.APIError as exc:
            raise BackendError(f"Upstream {self.model_name} failed: {exc}", code="upstream_error") from exc
        vectors = np.array([item.embedding for item in response.data], dtype=np.float32)
        return vectors, response.usage.prompt_tokens
