"""Model backends: one small class per runtime behind one interface (see base.py)."""

from __future__ import annotations

from inference.backends.base import (
    Backend,
    BackendError,
    GenerationChunk,
    GenerationRequest,
    SpecConfig,
    Transcription,
)


def backend_class(backend: str) -> type[Backend]:
    """The class for a ModelSpec.backend value; imported lazily so a web process loads no ML libs."""
    if backend == "ctranslate2":
        from inference.backends.ctranslate2_llm import CTranslate2ChatBackend

        return CTranslate2ChatBackend
    if backend == "llama_cpp":
        from inference.backends.llama_server import LlamaServerChatBackend

        return LlamaServerChatBackend
    if backend == "transformers":
        from inference.backends.transformers_llm import TransformersChatBackend

        return TransformersChatBackend
    if backend == "faster_whisper":
        from inference.backends.whisper import FasterWhisperBackend

        return FasterWhisperBackend
    if backend == "piper":
        from inference.backends.piper_tts import PiperBackend

        return PiperBackend
    if backend == "sentence_transformers":
        from inference.backends.embeddings import SentenceTransformersBackend

        return SentenceTransformersBackend
    if backend == "openai_upstream":
        from inference.backends.upstream import OpenAIUpstreamBackend

        return OpenAIUpstreamBackend
    raise BackendError(f"Unknown backend {backend!r}.", code="unknown_backend")


__all__ = [
    "Backend", "BackendError", "GenerationChunk", "GenerationRequest", "SpecConfig", "Transcription", "backend_class",
]
