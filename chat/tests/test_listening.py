"""The live transcript (LocalAgreement) and the VAD under it, with the real tiny.en Whisper in this
process on espeak-ng speech: words are confirmed in order and never taken back, and the final transcript
is what one decode of the whole utterance says."""

from __future__ import annotations

import re
import wave

import numpy as np
import pytest

from chat.listening import CUT_AFTER_SECONDS, LiveTranscript
from inference.tests.speech import speech_clip
from inference.tests.test_backends import _load
from inference.vad import SpeechDetector

CLIPS = [
    "what is the capital of France",
    "how do I reset my password",
    "please summarise the attached contract and tell me which clauses about termination and liability "
    "I should worry about before signing it next week",
]
STEP = 0.3  # seconds of audio between decodes, as partials come while the user speaks


@pytest.fixture(scope="module")
def whisper():
    return _load("whisper-tiny.en")


def _pcm(text: str, tmp_path, name: str) -> bytes:
    with wave.open(str(speech_clip(text, tmp_path, name=name))) as clip:
        return clip.readframes(clip.getnframes())


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w' ]+", " ", text.lower()).split()


def _decode(whisper, audio: bytes, prompt: str) -> tuple[str, list[dict]]:
    result = whisper.transcribe(np.frombuffer(audio, dtype=np.int16), prompt=prompt or None)
    return result.text, result.segments


@pytest.mark.parametrize("index", range(len(CLIPS)))
def test_words_are_confirmed_in_order_and_the_final_equals_a_whole_decode(whisper, tmp_path, index):
    pcm = _pcm(CLIPS[index], tmp_path, f"clip{index}")
    live = LiveTranscript()
    seen: list[list[str]] = []
    for end in range(int(STEP * 32000), len(pcm), int(STEP * 32000)):
        text, segments = _decode(whisper, live.window(pcm[:end]), live.prompt())
        live.update(text=text, segments=segments, end=end)
        seen.append(_words(live.confirmed_text()))
        assert live.text().startswith(live.confirmed_text())

    for before, after in zip(seen, seen[1:], strict=False):
        # Confirmed words are never changed or taken back (a full stop may move as the sentence grows).
        assert after[:len(before)] == before
    assert seen[-1], "a clip of several words confirms some before it ends"
    window_text, _ = _decode(whisper, live.window(pcm), live.prompt())
    whole, _ = _decode(whisper, pcm, "")
    assert _words(live.final(window_text)) == _words(whole)


def test_agreement_ignores_case_and_punctuation_and_stops_at_the_first_difference():
    second = 32000  # bytes of PCM16 at 16 kHz
    live = LiveTranscript()
    assert live.update(text="Please please", segments=[], end=second // 2) == []
    assert live.update(text="Please please summarize", segments=[], end=second) == []  # too little audio to agree
    assert live.update(text="What is the", segments=[], end=2 * second) == []
    assert live.update(text="what is the capital,", segments=[], end=3 * second) == ["what", "is", "the"]
    assert live.update(text="What is a capital of France?", segments=[], end=4 * second) == []
    assert live.update(text="What is the capital of France?", segments=[], end=5 * second) == []
    assert live.confirmed_text() == "What is the"  # as the latest decode writes them
    assert live.text() == "What is the capital of France?"
    assert live.update(text="What is the capital of France?", segments=[], end=6 * second) == [
        "capital", "of", "France?"]


def test_a_long_window_is_cut_after_its_confirmed_segments_and_only_the_tail_is_decoded_again():
    second = 32000
    first = {"start": 0.0, "end": 4.0, "text": "Please summarize the attached contract"}
    rest = {"start": 4.0, "end": 7.4, "text": "and tell me which"}
    live = LiveTranscript()
    live.update(text="Please summarize the attached contract and tell", segments=[first], end=int(6.5 * second))
    assert live.window_start == 0  # nothing is cut before it is confirmed

    live.update(text="Please summarize the attached contract and tell me which", segments=[first, rest],
                end=int(CUT_AFTER_SECONDS * second) + second)
    assert live.window_start == 4 * 16000 * 2  # after the first segment: all of it is confirmed
    assert live.prompt() == "Please summarize the attached contract"
    assert live.window(b"\x00" * (8 * second)) == b"\x00" * (4 * second)
    assert live.text() == "Please summarize the attached contract and tell me which"
    final = live.final("and tell me which clauses.")
    assert final == "Please summarize the attached contract and tell me which clauses."


def test_a_segment_the_latest_decode_hears_otherwise_is_not_cut_at():
    second = 32000
    live = LiveTranscript()
    live.update(text="Name three primary colours now", segments=[], end=2 * second)
    live.update(text="Name three primary colours now please", segments=[], end=3 * second)
    assert live.confirmed_text() == "Name three primary colours now"
    segment = {"start": 0.0, "end": 3.0, "text": "Name free primary colours now"}
    live.update(text="Name free primary colours now please and thanks", segments=[segment],
                end=int(CUT_AFTER_SECONDS * second) + 2 * second)
    assert live.window_start == 0 and live.confirmed_text().startswith("Name three")


def test_the_vad_finds_speech_between_silences(tmp_path):
    pcm = _pcm("what is the capital of France", tmp_path, "speech")
    silence = b"\x00" * 16000  # half a second
    detector = SpeechDetector()
    began = [detector.push(frame) for frame in _frames(silence + pcm + silence * 2)]

    assert sum(began) >= 1 and began.index(True) * 640 > len(silence)  # not in the leading silence
    assert detector.speech_start / 16000 == pytest.approx(0.5, abs=0.15)
    assert detector.silence_seconds() >= 0.8
    assert detector.speech_after(16000) and not detector.speech_after(detector.speech_end)

    quiet = SpeechDetector()
    for frame in _frames(silence * 4):
        assert quiet.push(frame) is False
    assert not quiet.heard_speech and quiet.silence_seconds() == 0


def _frames(pcm: bytes, size: int = 640) -> list[bytes]:
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]
