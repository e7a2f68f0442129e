"""Forward to any OpenAI-compatible server: vLLM, llama.cpp's server, Ollama, a hosted API, another Parley.

Per spec: `source` is the upstream's model name; `params.base_url` (default PARLEY_UPSTREAM_BASE_URL);
`params.api_key_env` names the environment variable holding the key (default PARLEY_UPSTREAM_API_KEY),
so the key lives in the worker's environment and never in the database, the admin or a log. Other
params: `timeout` and `connect_timeout` (seconds), `stream` (false for servers that can't stream chat),
`extra_body` (server-specific fields such as vLLM's `repetition_penalty`), `voice` and `sample_rate`
for speech, `normalize` for embeddings.

Failures the router can route around (unreachable, timeout, 5xx, 401/403/404/429) are retryable
`upstream_error`s; a 4xx about the request itself is not retryable and carries the upstream's message.
Messages name the server by scheme, host and port only, and never the key or a traceback.
"""

from __future__ import annotations

import io
import logging
import os
import wave
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from inference.backends.base import Backend, BackendError, GenerationChunk, GenerationRequest, Transcription

logger = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "PARLEY_UPSTREAM_API_KEY"
# 4xx statuses that mean "this request is wrong": another model would reject it too.
REQUEST_ERROR_STATUSES = {400, 413, 422}
# Codes an upstream (Parley, OpenAI) puts in an error body that mean the same, even inside a 200 stream.
REQUEST_ERROR_CODES = {"context_length_exceeded", "invalid_request_error", "invalid_value", "invalid_audio"}
MESSAGE_LIMIT = 500


def _where(base_url: str) -> str:
    """scheme://host:port of the upstream: enough to find it, with no credentials or query."""
    parts = urlsplit(base_url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class OpenAIUpstreamBackend(Backend):
    # Serves whatever task its spec has (chat, embed, stt or tts).
    task = "chat"

    def load(self) -> None:
        import openai
        from django.conf import settings

        params = self.spec.params
        base_url = (params.get("base_url") or settings.PARLEY_UPSTREAM_BASE_URL or "").rstrip("/")
        if not base_url:
            raise BackendError(
                f"{self.spec.name} forwards to an upstream server, but no base URL is set: set params.base_url "
                "on the model or PARLEY_UPSTREAM_BASE_URL.", code="load_failed",
            )
        self.where = _where(base_url)
        self.key_env = params.get("api_key_env") or DEFAULT_KEY_ENV
        # Read here rather than in settings: each spec names its own variable, and the key must not be
        # copied into the database. A server without auth (Ollama, llama.cpp) accepts any placeholder.
        self.api_key = os.environ.get(self.key_env, "")
        if not self.api_key and params.get("api_key_env"):
            raise BackendError(
                f"{self.spec.name} needs its upstream API key in the environment variable {self.key_env}, "
                "which is not set in this worker.", code="load_failed",
            )
        self.client = openai.OpenAI(
            base_url=base_url, api_key=self.api_key or "none", max_retries=0,
            timeout=openai.Timeout(float(params.get("timeout", 60)), connect=float(params.get("connect_timeout", 5))),
        )
        self.model_name = self.spec.source
        self.stream = bool(params.get("stream", True))
        self.extra_body = dict(params.get("extra_body") or {})

    def unload(self) -> None:
        # Not closed: a reload swaps backends while requests may still be streaming through this
        # client; its connections close when the last of them lets go of it.
        self.client = None

    def _client(self) -> Any:
        client = getattr(self, "client", None)
        if client is None:
            raise BackendError(f"{self.spec.name} is not loaded.", code="model_unloaded")
        return client

    # ------------------------------------------------------------------ errors

    def _scrub(self, message: str) -> str:
        if self.api_key and len(self.api_key) >= 4:
            message = message.replace(self.api_key, "[redacted]")
        return message[:MESSAGE_LIMIT]

    def _failure(self, exc: Exception) -> BackendError:
        """A BackendError for an openai exception, with a plain message and the right retryability."""
        import openai

        upstream = f"The upstream server {self.where} ({self.model_name})"
        if isinstance(exc, openai.APITimeoutError):
            error = BackendError(f"{upstream} did not answer in time.", code="upstream_error")
        elif isinstance(exc, openai.APIConnectionError):
            error = BackendError(f"{upstream} could not be reached.", code="upstream_error")
        else:
            body = getattr(exc, "body", None)
            body = body if isinstance(body, dict) else {}
            detail = self._scrub(str(body.get("message") or getattr(exc, "message", "") or ""))
            code = str(body.get("code") or body.get("type") or "")
            status = getattr(exc, "status_code", None)
            if status in REQUEST_ERROR_STATUSES or (status is None and code in REQUEST_ERROR_CODES):
                error = BackendError(
                    detail or f"{upstream} rejected the request (HTTP {status}).",
                    code="context_length_exceeded" if code == "context_length_exceeded" else "invalid_request",
                    retryable=False,
                )
            elif status in (401, 403):
                error = BackendError(f"{upstream} refused the API key from {self.key_env} (HTTP {status}).",
                                     code="upstream_error")
            elif status is None:
                error = BackendError(f"{upstream} failed mid-stream: {detail or 'no detail given'}",
                                     code="upstream_error")
            else:
                error = BackendError(f"{upstream} failed (HTTP {status})" + (f": {detail}" if detail else "."),
                                     code="upstream_error")
        # The status and code only: the request and the reply stay out of the logs.
        logger.warning("upstream %s failed for %s: %s", self.where, self.spec.name, error.code)
        return error

    # ------------------------------------------------------------------ chat

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model_name, "messages": request.messages, "max_tokens": request.max_tokens,
            "temperature": request.temperature, "top_p": request.top_p,
        }
        if request.stop:  # left out rather than null: some servers (Parley among them) refuse `stop: null`
            kwargs["stop"] = request.stop
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        if not self.stream:
            yield from self._generate_whole(kwargs)
            return
        try:
            stream = self._client().chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        except openai.APIError as exc:
            raise self._failure(exc) from None
        usage, reason, pieces = None, "stop", 0
        try:
            for chunk in stream:
                if request.is_canceled():
                    reason = "canceled"
                    break  # the finally closes the connection, which stops the upstream's decoding
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        pieces += 1
                        yield GenerationChunk(text=choice.delta.content)
                    if choice.finish_reason:
                        reason = "length" if choice.finish_reason == "length" else "stop"
        except openai.APIError as exc:
            raise self._failure(exc) from None
        finally:
            stream.close()
        yield self._last_chunk(reason, usage, pieces)

    def _generate_whole(self, kwargs: dict[str, Any]) -> Iterator[GenerationChunk]:
        """For upstreams that can't stream: one request, one text chunk. Cancel can't interrupt it."""
        import openai

        try:
            response = self._client().chat.completions.create(**kwargs)
        except openai.APIError as exc:
            raise self._failure(exc) from None
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        if text:
            yield GenerationChunk(text=text)
        reason = "length" if choice and choice.finish_reason == "length" else "stop"
        yield self._last_chunk(reason, response.usage, 1 if text else 0)

    @staticmethod
    def _last_chunk(reason: str, usage: Any, pieces: int) -> GenerationChunk:
        if usage is None:
            # A server that reports no usage: count streamed pieces, about one token each, rather
            # than bill nothing.
            return GenerationChunk("", reason, 0, pieces)
        cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
        return GenerationChunk(
            "", reason, usage.prompt_tokens or 0, usage.completion_tokens or 0,
            prompt_tokens_processed=(usage.prompt_tokens or 0) - cached if cached is not None else None,
        )

    # ------------------------------------------------------------------ embeddings

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        import openai

        try:
            response = self._client().embeddings.create(model=self.model_name, input=texts, encoding_format="float")
        except openai.APIError as exc:
            raise self._failure(exc) from None
        vectors = np.array([item.embedding for item in sorted(response.data, key=lambda d: d.index)],
                           dtype=np.float32)
        if self.spec.params.get("normalize", True):
            # Parley's retrieval takes cosine as a dot product; not every upstream returns unit vectors.
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1, norms)
        return vectors, response.usage.prompt_tokens if response.usage else 0

    # ------------------------------------------------------------------ audio

    def transcribe(self, audio: np.ndarray, *, language: str | None = None, prompt: str | None = None) -> Transcription:
        import openai

        from inference.audio import STT_RATE, wav_encode

        pcm = audio if audio.dtype == np.int16 else (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        extra: dict[str, Any] = {}
        if language or self.spec.params.get("language"):
            extra["language"] = language or self.spec.params["language"]
        if prompt:
            extra["prompt"] = prompt
        try:
            result = self._client().audio.transcriptions.create(
                model=self.model_name, file=("audio.wav", wav_encode(pcm.tobytes(), STT_RATE), "audio/wav"),
                response_format=self.spec.params.get("transcription_format", "verbose_json"), **extra,
            )
        except openai.APIError as exc:
            raise self._failure(exc) from None
        segments = [
            {"id": i, "start": round(float(s.start), 3), "end": round(float(s.end), 3), "text": s.text.strip()}
            for i, s in enumerate(getattr(result, "segments", None) or [])
        ]
        return Transcription(
            text=result.text.strip(), language=getattr(result, "language", None) or extra.get("language", ""),
            duration=float(getattr(result, "duration", 0) or len(pcm) / STT_RATE), segments=segments,
        )

    @property
    def sample_rate(self) -> int:
        # The task reads the rate before the first chunk exists, so it is declared, and audio at
        # another rate is resampled to it. OpenAI's speech is 24 kHz.
        return int(self.spec.params.get("sample_rate", 24000))

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[bytes]:
        import openai

        try:
            response = self._client().audio.speech.create(
                model=self.model_name, voice=self.spec.params.get("voice", "alloy"), input=text,
                response_format="wav", speed=speed,
            )
            data = response.read()
        except openai.APIError as exc:
            raise self._failure(exc) from None
        try:
            with wave.open(io.BytesIO(data)) as clip:
                rate, width, channels = clip.getframerate(), clip.getsampwidth(), clip.getnchannels()
                frames = clip.readframes(clip.getnframes())
        except (wave.Error, EOFError) as exc:
            raise BackendError(f"The upstream server {self.where} sent speech that is not WAV audio.",
                               code="upstream_error") from exc
        if width != 2:
            raise BackendError(f"The upstream server {self.where} sent {8 * width}-bit audio; Parley takes 16-bit.",
                               code="upstream_error")
        samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1)
        if rate != self.sample_rate and len(samples):
            # Linear interpolation: plenty for speech, and no resampler dependency in the worker.
            count = int(round(len(samples) * self.sample_rate / rate))
            samples = np.interp(np.linspace(0, len(samples) - 1, count), np.arange(len(samples)), samples)
        yield np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes()
