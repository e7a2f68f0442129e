"""Voice turns over `ws/voice/<conversation>/`: PCM16 in, partial and final transcripts, the text
turn, and the reply spoken sentence by sentence (docs/protocol.md has the frames)."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time

from asgiref.sync import sync_to_async
from django.conf import settings

from chat.consumers import ChatSocket, task_cancel
from chat.listening import LiveTranscript
from chat.metrics import STT_FINAL_MS, STT_PARTIAL_MS, TTS_FIRST_AUDIO_MS, VOICE_FIRST_AUDIO_MS
from chat.turns import Turn, TurnRefused
from inference.services import Caller, GatewayError, QuotaExceeded, synthesize, transcribe, transcription_bill
from inference.vad import SpeechDetector

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# Partial decodes: the first once this much speech is in, then one after another while speech goes on,
# at most one running and at most one per PARTIAL_EVERY_SECONDS.
MIN_PARTIAL_SECONDS = 0.25
PARTIAL_EVERY_SECONDS = 0.2
VAD_SILENCE_SECONDS = 0.7
# The VAD marks the end of speech a little early (a last word's fading consonant scores low): a decode
# counts as having heard everything only if the speech ended this much before the audio it covered.
FINAL_MARGIN_SECONDS = 0.25
# After this much quiet, with a decode that heard all the speech, the reply is begun on that transcript
# while the button is still held (or before a hands-free pause is long enough to end the turn). It is
# kept if the final transcript is the same, and withdrawn without a trace if the user goes on.
SPECULATE_AFTER_SECONDS = 0.3
# Hands-free, the microphone is open while the reply plays (`start` with `barge_in: true`), and what it
# hears of the reply itself must not interrupt it: speech then needs a surer score for longer (160 ms).
BARGE_IN_THRESHOLD, BARGE_IN_WINDOWS = 0.7, 5
# Decodes start this long before the speech does (Whisper hears a word's onset better with a little
# lead-in); the silence before it is skipped.
LEAD_IN_SECONDS = 0.3
AUDIO_FRAME_SECONDS = 0.1
_MARKDOWN = re.compile(r"[*_#`>|~]+|\[(\d+)\]")


def speakable(text: str) -> str:
    """Text as it should be spoken: no markdown symbols or citation marks."""
    return " ".join(_MARKDOWN.sub("", text).split())


class SentenceSplitter:
    """Cuts a streamed reply into pieces for speech. The first piece is short (a clause or a few
    words) so audio starts early; later ones are whole sentences, made while earlier ones play."""

    FIRST_WORDS = 8

    def __init__(self) -> None:
        self.buffer = ""
        self.first = True

    def push(self, text: str) -> list[str]:
        self.buffer += text
        pieces = []
        while True:
            piece = self._cut()
            if piece is None:
                return pieces
            if speakable(piece):
                pieces.append(piece)

    def flush(self) -> list[str]:
        piece, self.buffer = self.buffer, ""
        return [piece] if speakable(piece) else []

    def _cut(self) -> str | None:
        boundary = r"[.!?;:,](\s|$)" if self.first else r"[.!?](\s)|\n"
        match = re.search(boundary, self.buffer)
        end = match.end() if match and (not self.first or len(self.buffer[: match.start()].split()) >= 2) else None
        if end is None and self.first:
            words = self.buffer.split(" ")
            if len(words) > self.FIRST_WORDS:  # the last word may still be growing
                end = len(" ".join(words[: self.FIRST_WORDS])) + 1
        if end is None:
            return None
        piece, self.buffer = self.buffer[:end], self.buffer[end:]
        self.first = False
        return piece


class VoiceConsumer(ChatSocket):
    """Frames in: start, binary PCM16, end, cancel, ping. Out: partial, speech_start, speech_end, transcript,
    start, delta, audio_start, binary PCM16, audio_end, metrics, done, error, pong.

    Silero VAD runs on every frame as it arrives (inference/vad.py): partial decodes start once speech
    does and go on while it goes on, a hands-free turn ends after VAD_SILENCE_SECONDS of quiet, and in
    hands-free mode speech heard while a reply plays interrupts it (barge-in). The transcript grows by
    LocalAgreement (chat/listening.py); when the user stops, only what is not yet decoded is decoded."""

    socket_kind = "voice"

    async def connect(self) -> None:
        await super().connect()
        self.capturing = False
        # Set when the server ended an utterance itself (hands-free silence, the length limit): the
        # client cannot know the moment, so the audio it sent meanwhile is dropped, not an error.
        self.ended_by_server = False
        self.buffer = bytearray()
        self.mode = "ptt"
        self.vad: SpeechDetector | None = None
        self.live = LiveTranscript()
        self.partial_task: asyncio.Task | None = None
        self.turn_task: asyncio.Task | None = None
        self.marks: dict[str, float] = {}
        self.last_partial_at = 0.0
        self.onset_at: float | None = None
        self.speculation: _Speculation | None = None
        self.withdrawing: set[asyncio.Task] = set()

    async def disconnect(self, code: int) -> None:
        await self.session_unbind()
        await self._cancel_all()

    # ------------------------------------------------------------------ frames in

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            await self._audio(bytes_data)
            return
        frame = await self.parse(text_data or "")
        if frame is None:
            return
        kind = frame["type"]
        if kind == "ping":
            await self.send_frame({"type": "pong"})
        elif kind == "start":
            await self._start(frame)
        elif kind == "end":
            if not self.capturing:
                # A push-to-talk release after the length limit already ended the utterance is no mistake.
                if not self.ended_by_server:
                    await self.error("not_started", "`end` without `start`: nothing is being recorded.")
                return
            await self._end()
        elif kind == "cancel":
            if await self._cancel_all():
                await self.send_frame({"type": "done", "finish_reason": "canceled"})
        else:
            await self.error("unknown_type", f"Unknown frame type {kind!r}; use start, end, cancel or ping "
                                             "(and binary PCM16 frames between start and end).")

    async def _start(self, frame: dict) -> None:
        rate = frame.get("sample_rate")
        if rate != SAMPLE_RATE:
            await self.error("unsupported_sample_rate", f"Send 16-bit mono PCM at {SAMPLE_RATE} Hz "
                                                        f"(`sample_rate: {SAMPLE_RATE}`), not {rate!r}.")
            return
        mode = frame.get("mode", "ptt")
        if mode not in ("ptt", "vad"):
            await self.error("unsupported_mode", "`mode` is `ptt` (push-to-talk) or `vad` (hands-free).")
            return
        # Pressing to talk interrupts the reply that is playing. Hands-free, the microphone opens while
        # the reply plays, and only speech heard on it interrupts (see _audio).
        if mode == "ptt" or not self._replying():
            await self._cancel_all(announce=True)
        else:
            await self._cancel_partial()
        self.mode, self.capturing, self.buffer = mode, True, bytearray()
        self.ended_by_server = False
        barge_in = bool(frame.get("barge_in")) and mode == "vad"
        self.vad = SpeechDetector(threshold=BARGE_IN_THRESHOLD, min_speech_windows=BARGE_IN_WINDOWS) if barge_in \
            else SpeechDetector()
        self.live, self.onset_at = LiveTranscript(), None
        self.marks = {}
        self.last_partial_at = 0.0

    def _replying(self) -> bool:
        return self.turn_task is not None and not self.turn_task.done()

    async def _audio(self, data: bytes) -> None:
        if len(data) % 2:
            await self.error("odd_frame_length", f"Binary frames are 16-bit samples; {len(data)} bytes is not a "
                                                 "whole number of samples.")
            return
        if len(data) > settings.PARLEY_VOICE_MAX_FRAME_BYTES:
            await self.error("frame_too_large", f"Binary frames are limited to {settings.PARLEY_VOICE_MAX_FRAME_BYTES}"
                                                " bytes (send 20 ms frames: 640 bytes).")
            return
        if not self.capturing:
            if not self.ended_by_server:
                await self.error("audio_before_start", 'Send {"type": "start", "sample_rate": 16000} before audio.')
            return
        self.buffer += data
        limit = settings.PARLEY_VOICE_MAX_SECONDS * SAMPLE_RATE * 2
        if len(self.buffer) >= limit:
            del self.buffer[limit:]
            await self.error("utterance_too_long", f"Utterances are limited to {settings.PARLEY_VOICE_MAX_SECONDS}"
                                                   " seconds; I stopped listening there and will answer what I heard.")
            await self._end(reason="limit")
            return
        now = time.perf_counter()
        vad = self.vad
        if vad.push(data) and self.onset_at is None:
            # Back-dated to where the speech began in the audio (frames come in real time).
            self.onset_at = now - (vad.samples - vad.speech_start) / SAMPLE_RATE
            # The silence (or the reply's own echo) before the speech is not decoded.
            self.live.window_start = max(0, vad.speech_start - int(LEAD_IN_SECONDS * SAMPLE_RATE)) * 2
            await self.send_frame({"type": "speech_start"})  # first: the page silences the reply on it
            if self.mode == "vad" and self._replying():
                await self._cancel_turn(announce=True)
        if not vad.heard_speech:
            return
        if vad.speaking and self.speculation is not None:
            self._drop_speculation()  # the user went on: that transcript was not the whole of it
            self.marks["speculations_withdrawn"] = self.marks.get("speculations_withdrawn", 0) + 1
        if self.mode == "vad" and vad.silence_seconds() >= VAD_SILENCE_SECONDS:
            await self._end(reason="silence")
            return
        self._speculate()
        decoded = self.live.previous.end if self.live.previous else 0
        idle = self.partial_task is None or self.partial_task.done()
        speech_in = (vad.samples - vad.speech_start) / SAMPLE_RATE
        # Decodes go on until one has heard the speech's end with the margin: that one can be the final.
        if (idle and speech_in >= MIN_PARTIAL_SECONDS and now - self.last_partial_at >= PARTIAL_EVERY_SECONDS
                and vad.speech_after(decoded // 2 - int(FINAL_MARGIN_SECONDS * SAMPLE_RATE))):
            self.last_partial_at = now
            self.partial_task = asyncio.create_task(self._partial(len(self.buffer)))

    def _speculate(self) -> None:
        """Begin the reply on the transcript so far if the user seems to have finished (see
        SPECULATE_AFTER_SECONDS): at most one at a time, on a decode that heard all the speech."""
        vad, latest = self.vad, self.live.previous
        if (self.speculation is not None or latest is None or vad.silence_seconds() < SPECULATE_AFTER_SECONDS
                or (self.partial_task is not None and not self.partial_task.done())
                or vad.speech_after(latest.end // 2 - int(FINAL_MARGIN_SECONDS * SAMPLE_RATE))):
            return
        text = self.live.final(" ".join(latest.words)).strip()
        if text:
            self.marks["speculations"] = self.marks.get("speculations", 0) + 1
            self.speculation = _Speculation(Turn(user=self.user, conversation=self.conversation, text=text,
                                                 via="voice", speculative=True))

    # ------------------------------------------------------------------ speech to text

    def _caller(self) -> Caller:
        return Caller(user=self.user, via="voice")

    async def _transcribe(self, audio: bytes, *, preview: bool, prompt: str = "",
                          bill_seconds: float | None = None) -> dict:
        def run() -> dict:
            return transcribe(caller=self._caller(), audio=audio, model=settings.PARLEY_VOICE_STT_MODEL,
                              language="en", preview=preview, prompt=prompt or None, bill_seconds=bill_seconds)

        return await sync_to_async(run, thread_sensitive=False)()

    async def _partial(self, end: int) -> None:
        """Decode the window up to byte `end` and show the transcript so far."""
        live = self.live
        try:
            result = await self._transcribe(live.window(bytes(self.buffer[:end])), preview=True, prompt=live.prompt())
        except (GatewayError, QuotaExceeded):
            return  # a missed partial is harmless; the final transcript decides
        live.update(text=result["text"].strip(), segments=result.get("segments", []), end=end)
        live.spec = result.get("spec", "")
        text = live.text()
        if self.capturing and live is self.live and text:
            if "first_partial_ms" not in self.marks and self.onset_at is not None:
                self.marks["first_partial_ms"] = (time.perf_counter() - self.onset_at) * 1000
                STT_PARTIAL_MS.observe(self.marks["first_partial_ms"])
            await self.send_frame({"type": "partial", "text": text, "confirmed": live.confirmed_text()})

    async def _end(self, *, reason: str = "") -> None:
        """End the utterance and answer it; `reason` says why when the server decided (not the client's `end`)."""
        self.capturing = False
        audio, self.buffer = bytes(self.buffer), bytearray()
        self.marks["speech_end"] = time.perf_counter()
        if reason:
            self.ended_by_server = True
            await self.send_frame({"type": "speech_end", "reason": reason})
        if len(audio) < SAMPLE_RATE * 2 * 0.2:
            await self._cancel_partial()
            self._drop_speculation()
            await self.error("no_speech", "That was too short to hear anything. Hold the button while you speak.")
            return
        speculation, self.speculation = self.speculation, None
        self.turn_task = asyncio.create_task(self._turn(audio, self.vad, self.live, self.partial_task, speculation))

    async def _final(self, audio: bytes, vad: SpeechDetector, live: LiveTranscript,
                     pending: asyncio.Task | None) -> str:
        """The utterance's transcript. A decode still running finishes first; if the latest decode already
        heard all the speech (VAD: none after it, with a margin for the tail of the last word), it is the
        transcript, billed as one; otherwise the window not yet confirmed is decoded once more."""
        if pending is not None and not pending.done():
            try:
                await pending
            except asyncio.CancelledError:
                pass
        seconds = len(audio) / 2 / SAMPLE_RATE
        latest = live.previous
        if latest is not None and not vad.speech_after(latest.end // 2 - int(FINAL_MARGIN_SECONDS * SAMPLE_RATE)):
            def bill() -> None:
                transcription_bill(caller=self._caller(), seconds=seconds, spec=live.spec,
                                   model=settings.PARLEY_VOICE_STT_MODEL)

            await sync_to_async(bill, thread_sensitive=False)()
            self.marks["stt_reused"] = 1
            return live.final(" ".join(latest.words))
        result = await self._transcribe(live.window(audio), preview=False, prompt=live.prompt(), bill_seconds=seconds)
        return live.final(result["text"].strip())

    # ------------------------------------------------------------------ the reply

    async def _turn(self, audio: bytes, vad: SpeechDetector, live: LiveTranscript, pending: asyncio.Task | None,
                    speculation: _Speculation | None) -> None:
        marks = self.marks
        if not vad.heard_speech:
            if pending is not None:
                pending.cancel()
            self._withdraw(speculation)
            await self.error("no_speech", "I didn't hear any speech. Try again a little closer to the microphone.")
            return
        try:
            text = await self._final(audio, vad, live, pending)
        except (QuotaExceeded, GatewayError) as exc:
            self._withdraw(speculation)
            if isinstance(exc, QuotaExceeded):
                await self.send_frame(TurnRefused.of(exc).frame())
            else:
                await self.error("stt_failed", f"Speech recognition failed: {exc.message}")
            return
        marks["stt_final_ms"] = (time.perf_counter() - marks["speech_end"]) * 1000
        STT_FINAL_MS.observe(marks["stt_final_ms"])
        await self.send_frame({"type": "transcript", "text": text})
        if not text:
            await self.error("no_speech", "I didn't catch any words. Try again a little closer to the microphone.")
            return
        speech = _Speech(self, marks)
        splitter = SentenceSplitter()
        held: list[dict] = []

        async def on_frame(frame: dict) -> None:
            if frame["type"] == "delta":
                for piece in splitter.push(frame["text"]):
                    speech.say(piece)

        turn = await speculation.adopt(text) if speculation is not None else None
        if speculation is not None:
            marks["speculation"] = "used" if turn is not None else "discarded"
        if self.withdrawing:  # a withdrawn speculation must have let go of the conversation
            await asyncio.gather(*self.withdrawing, return_exceptions=True)
        turn = turn or Turn(user=self.user, conversation=self.conversation, text=text, via="voice")
        try:
            async for frame in turn.run():
                if frame["type"] == "start":
                    self.current_message_id = frame["message_id"]
                if frame["type"] == "delta" and "llm_ttft_ms" not in marks:
                    marks["llm_ttft_ms"] = (time.perf_counter() - marks["speech_end"]) * 1000 - marks["stt_final_ms"]
                if frame["type"] in ("done", "metrics"):
                    held.append(frame)  # sent after the last audio, so `done` ends the whole turn
                    continue
                await self.send_frame(frame)
                await on_frame(frame)
            for piece in splitter.flush():
                speech.say(piece)
            await speech.finish()
        except asyncio.CancelledError:
            await speech.stop()
            raise
        # `done` closes the voice turn, so it goes last, after the metrics.
        for frame in sorted(held, key=lambda f: f["type"] == "done"):
            if frame["type"] == "metrics":
                frame = {**frame, **self._voice_metrics(marks)}
            await self.send_frame(frame)

    def _voice_metrics(self, marks: dict) -> dict:
        keys = ("first_partial_ms", "stt_final_ms", "stt_reused", "llm_ttft_ms", "tts_first_audio_ms",
                "voice_first_audio_ms")
        metrics = {key: round(marks[key], 1) for key in keys if key in marks}
        for key in ("speculation", "speculations", "speculations_withdrawn"):
            if key in marks:
                metrics[key] = marks[key]
        return metrics

    async def _cancel_all(self, *, announce: bool = False) -> bool:
        """Stop the partial decode and the reply; True if a reply was stopped (`announce` tells the client
        with `done`, finish_reason `interrupted`)."""
        await self._cancel_partial()
        self._drop_speculation()
        canceled = await self._cancel_turn(announce=announce)
        self.capturing = False
        return canceled

    def _drop_speculation(self) -> None:
        self._withdraw(self.speculation)
        self.speculation = None

    def _withdraw(self, speculation: _Speculation | None) -> None:
        if speculation is not None:
            task = asyncio.create_task(speculation.withdraw())
            self.withdrawing.add(task)
            task.add_done_callback(self.withdrawing.discard)

    async def _cancel_partial(self) -> None:
        await task_cancel(self.partial_task)

    async def _cancel_turn(self, *, announce: bool = False) -> bool:
        canceled = await task_cancel(self.turn_task)
        if canceled and announce:
            await self.send_frame({"type": "done", "finish_reason": "interrupted"})
        return canceled


class _Speculation:
    """A reply begun before the user finished (Turn with speculative=True): prepared in a thread at once;
    `adopt(text)` keeps it if `text` is what it answered, `withdraw()` takes it back."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.task = asyncio.create_task(self._prepare())

    async def _prepare(self) -> Turn | None:
        try:
            await sync_to_async(self.turn.prepare, thread_sensitive=False)()
        except TurnRefused:
            return None  # the real turn meets the same refusal and reports it
        return self.turn

    async def adopt(self, text: str) -> Turn | None:
        turn = await asyncio.shield(self.task)
        if turn is None:
            return None
        if turn.text == text.strip() and await sync_to_async(turn.confirm, thread_sensitive=False)():
            return turn
        await sync_to_async(turn.discard, thread_sensitive=False)()
        return None

    async def withdraw(self) -> None:
        turn = await asyncio.shield(self.task)  # a prepare under way finishes in its thread anyway
        if turn is not None:
            await sync_to_async(turn.discard, thread_sensitive=False)()


class _Speech:
    """Speaks pieces in order through the gpu worker's TTS, streaming PCM16 to the client."""

    def __init__(self, consumer: VoiceConsumer, marks: dict) -> None:
        self.consumer, self.marks = consumer, marks
        self.queue: asyncio.Queue = asyncio.Queue()
        self.started = False
        self.task = asyncio.create_task(self._run())

    def say(self, piece: str) -> None:
        self.queue.put_nowait(speakable(piece))

    async def finish(self) -> None:
        self.queue.put_nowait(None)
        await self.task

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        if self.started:
            await self.consumer.send_frame({"type": "audio_end", "interrupted": True})

    async def _run(self) -> None:
        consumer = self.consumer
        while True:
            piece = await self.queue.get()
            if piece is None:
                break
            asked = time.perf_counter()

            def speak(text: str = piece) -> dict:
                return synthesize(caller=consumer._caller(), text=text, model=settings.PARLEY_VOICE_TTS_MODEL)

            try:
                result = await sync_to_async(speak, thread_sensitive=False)()
            except QuotaExceeded as exc:
                await consumer.send_frame(TurnRefused.of(exc).frame())
                break  # the rest of the reply is still shown as text
            except GatewayError as exc:
                await consumer.error("tts_failed", f"Speech synthesis failed: {exc.message}")
                continue
            rate, pcm = result["sample_rate"], base64.b64decode(result["audio"])
            if not self.started:
                self.started = True
                now = time.perf_counter()
                self.marks["tts_first_audio_ms"] = (now - asked) * 1000
                self.marks["voice_first_audio_ms"] = (now - self.marks["speech_end"]) * 1000
                TTS_FIRST_AUDIO_MS.observe(self.marks["tts_first_audio_ms"])
                VOICE_FIRST_AUDIO_MS.observe(self.marks["voice_first_audio_ms"])
                await consumer.send_frame({"type": "audio_start", "sample_rate": rate, "format": "pcm16"})
            step = int(rate * AUDIO_FRAME_SECONDS) * 2
            for offset in range(0, len(pcm), step):
                await consumer.send(bytes_data=pcm[offset:offset + step])
        if self.started:
            await consumer.send_frame({"type": "audio_end"})
