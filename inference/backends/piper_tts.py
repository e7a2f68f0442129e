from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from inference.backends.base import Backend, BackendError


class PiperBackend(Backend):
    task = "tts"

    def load(self) -> None:
        from piper import PiperVoice

        model = Path(self.spec.path)
        config = Path(self.spec.params.get("config_path") or f"{model}.json")
        try:
            self.voice = PiperVoice.load(model, config_path=config, use_cuda=self.device == "cuda")
        except (RuntimeError, OSError, ValueError, json.JSONDecodeError) as exc:
            raise BackendError(f"Could not load {self.spec.name}: {exc}", code="load_failed") from exc

    def unload(self) -> None:
        self.voice = None

    @property
    def sample_rate(self) -> int:
        return int(self.voice.config.sample_rate)

    def synthesize(self, text: str, *, speed: float = 1.0) -> Iterator[bytes]:
        """PCM16 mono at `sample_rate`, one chunk per sentence as soon as it is ready."""
        from piper import SynthesisConfig

        # Piper's length_scale is duration: larger is slower, so it is the inverse of speed.
        config = SynthesisConfig(length_scale=1.0 / max(0.25, min(speed, 4.0)))
        for chunk in self.voice.synthesize(text, syn_config=config):
            yield chunk.audio_int16_bytes
