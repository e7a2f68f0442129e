"""Silero VAD over a live stream: which 32 ms windows of 16 kHz audio hold speech.

The model is the ONNX file the `silero-vad` package ships (no hub, no torch at run time); one
InferenceSession per process is shared by every stream (its `run` is thread-safe), and each stream
keeps its own recurrent state. A window costs a few tenths of a millisecond of one core, so the voice
socket runs it inline as frames arrive.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 512  # samples: 32 ms, the model's window at 16 kHz
CONTEXT = 64  # samples of the previous window the model sees with each one
# Speech starts at a window at or above THRESHOLD and lasts until one falls below THRESHOLD - 0.15
# (silero's own hysteresis); a single loud window is not yet speech (MIN_SPEECH_WINDOWS).
THRESHOLD = 0.5
MIN_SPEECH_WINDOWS = 2

_session = None
_session_lock = threading.Lock()


class VadUnavailable(Exception):
    pass


def model_path() -> Path:
    """The ONNX weights inside the installed `silero-vad` wheel (found without importing it: its
    package imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VadUnavailable("The silero-vad package is not installed (make setup installs it).")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise VadUnavailable(f"silero-vad's model is missing at {path}; reinstall the package.")
    return path


def _shared_session():
    global _session
    with _session_lock:
        if _session is None:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            _session = onnxruntime.InferenceSession(str(model_path()), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        return _session


class SpeechDetector:
    """Feed PCM16 as it comes (`push`); ask where speech began and how long it has been quiet since.
    Positions are sample offsets from the first sample pushed."""

    def __init__(self, *, threshold: float = THRESHOLD, min_speech_windows: int = MIN_SPEECH_WINDOWS) -> None:
        self.session = _shared_session()
        self.threshold = threshold
        self.min_speech_windows = min_speech_windows
        self.state = np.zeros((2, 1, 128), np.float32)
        self.context = np.zeros((1, CONTEXT), np.float32)
        self.pending = np.zeros(0, np.float32)
        self.samples = 0  # samples run through the model
        self.speaking = False
        self.run_length = 0  # consecutive windows at or above the threshold
        self.speech_start: int | None = None  # where the first speech began
        self.speech_end: int | None = None  # where the latest speech window ended (None before any)
        self.last_onset: int | None = None  # where the latest stretch of speech began

    def push(self, pcm: bytes) -> bool:
        """Run the new audio through the model; True when speech began within it."""
        audio = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        self.pending = np.concatenate([self.pending, audio]) if len(self.pending) else audio
        began = False
        rate = np.array(SAMPLE_RATE, dtype=np.int64)
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            x = np.concatenate([self.context, window[None, :]], axis=1)
            out, self.state = self.session.run(None, {"input": x, "state": self.state, "sr": rate})
            self.context = x[:, -CONTEXT:]
            probability = float(out[0][0])
            self.samples += WINDOW
            if probability >= self.threshold:
                self.run_length += 1
                if not self.speaking and self.run_length >= self.min_speech_windows:
                    self.speaking, began = True, True
                    self.last_onset = self.samples - self.run_length * WINDOW
                    if self.speech_start is None:
                        self.speech_start = self.last_onset
            else:
                self.run_length = 0
                if self.speaking and probability < self.threshold - 0.15:
                    self.speaking = False
            if self.speaking:
                self.speech_end = self.samples
        return began

    @property
    def heard_speech(self) -> bool:
        return self.speech_start is not None

    def silence_seconds(self) -> float:
        """How long it has been quiet since the last speech (0 while speaking or before any speech)."""
        if self.speaking or self.speech_end is None:
            return 0.0
        return (self.samples - self.speech_end) / SAMPLE_RATE

    def speech_after(self, position: int) -> bool:
        """Whether any speech ran past sample `position` (or is running now)."""
        return self.speaking or (self.speech_end is not None and self.speech_end > position)
