"""Prometheus histograms for each stage of a chat or voice turn (exported at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_BUCKETS = (25, 50, 100, 150, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 5000, 10000)

STT_PARTIAL_MS = Histogram("stt_partial_ms", "Audio received to partial transcript sent (ms)", buckets=_BUCKETS)
STT_FINAL_MS = Histogram("stt_final_ms", "End of speech to final transcript (ms)", buckets=_BUCKETS)
LLM_TTFT_MS = Histogram("llm_ttft_ms", "User message to first reply token (ms)", buckets=_BUCKETS)
TTS_FIRST_AUDIO_MS = Histogram("tts_first_audio_ms", "First sentence ready to its first audio (ms)", buckets=_BUCKETS)
VOICE_FIRST_AUDIO_MS = Histogram("voice_first_audio_ms", "End of speech to first reply audio (ms)", buckets=_BUCKETS)
LLM_TOKENS_PER_S = Histogram("llm_tokens_per_second", "Decode speed of each completed chat reply (tokens/s)",
                             buckets=(1, 2, 5, 10, 15, 20, 30, 40, 60, 80, 120, 200))
LLM_COMPLETION_TOKENS = Counter("llm_completion_tokens", "Tokens generated for chat replies")

# Socket health for the error-rate panel and alert; both label values exist from the start so a
# quiet process still exports zeros.
SOCKET_CONNECTIONS = Counter("chat_socket_connections", "Chat and voice sockets accepted", ["socket"])
SOCKET_ERRORS = Counter("chat_socket_errors", "Error frames sent on chat and voice sockets", ["socket"])
for _socket in ("chat", "voice"):
    SOCKET_CONNECTIONS.labels(_socket)
    SOCKET_ERRORS.labels(_socket)
