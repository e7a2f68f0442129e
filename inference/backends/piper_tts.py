from __future__ import annotations

import json
import re
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
        """PCM16 mono at `sample_rate`, one chunk per piece (see text_pieces) as soon as it is ready."""
        from piper import SynthesisConfig

        # Piper's length_scale is duration: larger is slower, so it is the inverse of speed.
        config = SynthesisConfig(length_scale=1.0 / max(0.25, min(speed, 4.0)))
        for piece in text_pieces(text):
            for chunk in self.voice.synthesize(piece, syn_config=config):
                yield chunk.audio_int16_bytes


FIRST_PIECE_CHARS = 60


def text_pieces(text: str) -> list[str]:
    """Split text so the first audio is ready soon: Piper synthesizes a whole sentence before it
    returns anything, so a long first sentence is cut at a clause (or, failing that, a word)
    boundary. Later pieces are whole sentences: they are made while the first one plays."""
    text = " ".join(text.split())
    if len(text) <= FIRST_PIECE_CHARS:
        return [text] if text else []
    head = text[: FIRST_PIECE_CHARS + 1]
    cut = max(head.rfind(mark) for mark in (". ", "! ", "? ", "; ", ": ", ", "))
    if cut < 20:  # no clause boundary early on: cut before a conjunction, or at a space
        conjunction = re.search(r".*\s(?=(and|but|or|so|because|with|which|that)\s)", head)
        cut = conjunction.end() - 1 if conjunction and conjunction.end() > 20 else head.rfind(" ")
    else:
        cut += 1  # keep the punctuation with the first piece
    return [text[:cut].strip(), text[cut:].strip()]
