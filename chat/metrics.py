"""Prometheus histograms for each stage of a chat or voice turn (exported at /metrics)."""

from __future__ import annotations

from prometheus_client import Histogram

_BUCKETS = (25, 50, 100, 150, 200, 300, 400, 500, 700, 1000, 1500, 2000, 3000, 5000, 10000)

STT_PARTIAL_MS = Histogram("stt_partial_ms", "Audio received to partial transcript sent (ms)", buckets=_BUCKETS)
STT_FINAL_MS = Histogram("stt_final_ms", "End of speech to final transcript (ms)", buckets=_BUCKETS)
LLM_TTFT_MS = Histogram("llm_ttft_ms", "User message to first reply token (ms)", buckets=_BUCKETS)
TTS_FIRST_AUDIO_MS = Histogram("tts_first_audio_ms", "First sentence ready to its first audio (ms)", buckets=_BUCKETS)
VOICE_FIRST_AUDIO_MS = Histogram("voice_first_audio_ms", "End of speech to first reply audio (ms)", buckets=_BUCKETS)
