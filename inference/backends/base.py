"""The interface every backend implements, and the plain data that crosses it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class BackendError(Exception):
    """A model could not load or serve a request; `code` is stable, the message is for people."""

    def __init__(self, message: str, *, code: str = "backend_error", retryable: bool = True):
        super().__init__(message)
        self.message = message
        self.code = code
        # Retryable errors let the router try the next model in the chain.
        self.retryable = retryable


@dataclass(frozen=True)
class SpecConfig:
    """A snapshot of a ModelSpec row, safe to hold in worker threads."""

    name: str
    task: str
    backend: str
    source: str
    sha256: str = ""
    quantization: str = "int8"
    params: dict = field(default_factory=dict)
    path: Path | None = None  # resolved local weights, set by the runtime before load()


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    is_canceled: Callable[[], bool] = lambda: False
    # Called with the request's place in line (1 = next) while it waits for a free slot.
    on_queued: Callable[[int], None] = lambda position: None
    # Extra sampling knobs a backend may honour (repetition guards for small models, from spec params).
    repeat_penalty: float | None = None


@dataclass
class GenerationChunk:
    text: str
    finish_reason: str | None = None  # "stop", "length" or "canceled" on the last chunk
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Prompt tokens the engine really computed for this request (after any cache reuse and
    # including re-prefills); the bench and tests compare it with prompt_tokens.
    prompt_tokens_processed: int | None = None


@dataclass
class Transcription:
    text: str
    language: str
    duration: float
    segments: list[dict] = field(default_factory=list)


class Backend:
    """Load once, serve many. Methods a backend's task does not use raise BackendError."""

    task = ""

    def __init__(self, spec: SpecConfig, device: str):
        self.spec = spec
        self.device = device

    def load(self) -> None:
        raise NotImplementedError

    def unload(self) -> None:
        """Drop references so memory is returned; subclasses close anything they hold."""

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        raise BackendError(f"{self.spec.name} does not generate text.", code="wrong_task", retryable=False)

    def transcribe(self, audio: np.ndarray, *, language: str | None = None, prompt: str | None = None) -> Transcription:
        raise BackendError(f"{self.spec.name} does not transcribe audio.", code="wrong_task", retryable=False)

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[bytes]:
        raise BackendError(f"{self.spec.name} does not synthesize speech.", code="wrong_task", retryable=False)

    @property
    def sample_rate(self) -> int:
        return 16000

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        raise BackendError(f"{self.spec.name} does not embed text.", code="wrong_task", retryable=False)
