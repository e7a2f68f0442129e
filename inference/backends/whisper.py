from __future__ import annotations

import threading

import numpy as np

from inference.backends.base import Backend, BackendError, Transcription
from inference.devices import cpu_threads


class FasterWhisperBackend(Backend):
    task = "stt"

    def load(self) -> None:
        from faster_whisper import WhisperModel

        compute_type = self.spec.quantization or "int8"
        if self.device == "cuda" and compute_type == "int8":
            compute_type = "int8_float16"
        try:
            self.model = WhisperModel(
                str(self.spec.path), device=self.device, compute_type=compute_type, cpu_threads=cpu_threads()
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise BackendError(f"Could not load {self.spec.name}: {exc}", code="load_failed") from exc
        # One transcription at a time per model: CTranslate2's Whisper already uses every core,
        # and interleaving two only makes both slower.
        self.lock = threading.Lock()

    def unload(self) -> None:
        self.model = None

    def transcribe(self, audio: np.ndarray, *, language: str | None = None, prompt: str | None = None) -> Transcription:
        if audio.dtype == np.int16:
            audio = audio.astype(np.float32) / 32768.0
        language = language or self.spec.params.get("language")
        with self.lock:
            segments, info = self.model.transcribe(
                audio, beam_size=int(self.spec.params.get("beam_size", 1)), language=language,
                initial_prompt=prompt, vad_filter=False, condition_on_previous_text=False,
            )
            segments = list(segments)
        return Transcription(
            text="".join(segment.text for segment in segments).strip(),
            language=info.language,
            duration=float(info.duration),
            segments=[
                {"id": i, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text.strip()}
                for i, s in enumerate(segments)
            ],
        )
