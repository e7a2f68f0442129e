from __future__ import annotations

import re
import threading

import numpy as np

from inference.backends.base import Backend, BackendError, Transcription
from inference.devices import cpu_threads

SAMPLE_RATE = 16000
# Whisper's encoder is trained on 30 s windows and faster-whisper pads every clip to one: on CPU that
# encoder pass is four fifths of a short clip's cost (about 460 ms of CPU for tiny.en, against 25 ms
# for the 5 s a spoken question takes). Clips up to SHORT_CONTEXT_MAX_SECONDS are encoded at their own
# length plus SHORT_CONTEXT_PAD_SECONDS of silence, which is what tells the decoder where speech ends
# (with less than a second it tends to repeat the sentence instead of ending it). Longer clips take
# faster-whisper's windows.
SHORT_CONTEXT_MAX_SECONDS = 25.0
SHORT_CONTEXT_PAD_SECONDS = 1.0
# Tokens per second of audio a decode may use before it is cut: fast speech is about 4.
TOKENS_PER_SECOND_LIMIT = 8


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
        if len(audio) <= SHORT_CONTEXT_MAX_SECONDS * SAMPLE_RATE and self.spec.params.get("short_context", True):
            return self._transcribe_short(audio, language=language, prompt=prompt)
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

    def _transcribe_short(self, audio: np.ndarray, *, language: str | None, prompt: str | None) -> Transcription:
        """One decode over the clip encoded at its own length, with timestamps: segments that start after
        the clip's end, or repeat the one before word for word, are the decoder running on into the
        padding and are dropped."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        model = self.model
        duration = len(audio) / SAMPLE_RATE
        padded = np.concatenate([audio, np.zeros(int(SHORT_CONTEXT_PAD_SECONDS * SAMPLE_RATE), np.float32)])
        features = model.feature_extractor(padded)
        frames = features.shape[-1] - features.shape[-1] % 2  # the encoder's convolution halves the frames
        multilingual = model.model.is_multilingual
        if not multilingual:
            language = "en"
        tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language or "en")
        previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        tokens = model.get_prompt(tokenizer, previous[-(model.max_length // 2 - 1):], without_timestamps=False)
        with self.lock:
            features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames]))
            if multilingual and language is None:
                language = model.model.detect_language(features)[0][0][0].strip("<|>")
                tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language=language)
                tokens = model.get_prompt(tokenizer, previous[-(model.max_length // 2 - 1):],
                                          without_timestamps=False)
            result = model.model.generate(
                features, [tokens], beam_size=int(self.spec.params.get("beam_size", 1)),
                max_length=min(model.max_length, len(tokens) + 16 + int(duration * TOKENS_PER_SECOND_LIMIT)),
                suppress_blank=True, suppress_tokens=[-1], max_initial_timestamp_index=50,
            )[0]
        segments = _segments(result.sequences_ids[0], tokenizer, duration)
        return Transcription(text=_unrepeated(" ".join(s["text"] for s in segments)), language=language or "en",
                             duration=duration, segments=segments)


def _segments(ids: list[int], tokenizer, duration: float) -> list[dict]:
    """Timestamped segments from a decode's tokens, without what the decoder made up past the clip."""
    begin = tokenizer.timestamp_begin
    pieces: list[tuple[float, float | None, list[int]]] = []
    start, text = None, []
    for token in ids:
        if token >= begin:
            at = (token - begin) * 0.02
            if start is None:
                start = at
            else:
                pieces.append((start, at, text))
                start, text = None, []
        elif token < tokenizer.eot:
            text.append(token)
    if text:
        pieces.append((start or 0.0, None, text))
    segments: list[dict] = []
    for start, end, text in pieces:
        words = tokenizer.decode(text).strip()
        if not words or start >= duration or (segments and words == segments[-1]["text"]):
            continue
        end = duration if end is None else min(end, duration)
        segments.append({"id": len(segments), "start": round(start, 3), "end": round(end, 3), "text": words})
    return segments


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _unrepeated(text: str) -> str:
    """The text without a sentence said twice in a row: a decode that runs past the speech repeats the
    last sentence rather than ending ("Give me a tip. Give me a tip.")."""
    sentences: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        if sentence and (not sentences or sentence.lower() != sentences[-1].lower()):
            sentences.append(sentence)
    return " ".join(sentences)
