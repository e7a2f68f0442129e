"""Real speech for tests: espeak-ng says it, sox makes it 16 kHz mono like a microphone stream."""

from __future__ import annotations

import subprocess
from pathlib import Path


def speech_clip(text: str, directory: Path, *, rate: int = 16000, name: str = "clip") -> Path:
    raw, out = directory / f"{name}-raw.wav", directory / f"{name}.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)], check=True,
                   capture_output=True)
    return out
