"""Audio in and out of the API: decode any container PyAV reads, encode what clients ask for."""

from __future__ import annotations

import io
import wave

import numpy as np

STT_RATE = 16000


class AudioError(Exception):
    pass


def audio_decode(data: bytes, *, max_seconds: float) -> np.ndarray:
    """PCM16 mono at 16 kHz. Raises AudioError for data that is not audio or is too long."""
    import av

    if not data:
        raise AudioError("The audio file is empty.")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioError(f"The file is not audio Parley can read ({exc.__class__.__name__}).") from exc
    with container:
        if not container.streams.audio:
            raise AudioError("The file has no audio stream.")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=STT_RATE)
        parts, samples, limit = [], 0, int(max_seconds * STT_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    array = out.to_ndarray().reshape(-1)
                    parts.append(array)
                    samples += len(array)
                if samples > limit:
                    raise AudioError(f"The audio is longer than the limit of {max_seconds:.0f} seconds.")
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise AudioError(f"The audio could not be decoded: {exc}") from exc
    if not parts:
        raise AudioError("The file contains no audio samples.")
    return np.concatenate(parts).astype(np.int16)


CONTENT_TYPES = {
    "wav": "audio/wav", "pcm": "audio/L16", "mp3": "audio/mpeg", "opus": "audio/ogg", "flac": "audio/flac",
    "aac": "audio/aac",
}
_CODECS = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus"), "flac": ("flac", "flac"), "aac": ("adts", "aac")}


def wav_encode(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def audio_encode(pcm: bytes, rate: int, fmt: str) -> bytes:
    """Encode PCM16 mono in `fmt` (one of CONTENT_TYPES)."""
    if fmt == "pcm":
        return pcm
    if fmt == "wav":
        return wav_encode(pcm, rate)
    import av

    container_format, codec = _CODECS[fmt]
    out_rate = 48000 if fmt == "opus" else rate  # Opus only takes 8/12/16/24/48 kHz
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate, layout="mono")
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=out_rate)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()
