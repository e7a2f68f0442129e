"""Voice turns through the real stack with espeak-ng speech sent in real time, 20 ms frames:
first partial transcript, final transcript, LLM, TTS, end-of-speech → first reply audio, and barge-in
(hands-free speech during the reply → playback stopped).

Each clip has LEAD_SECONDS of silence before the speech and TRAIL_SECONDS after it, like a press of the
button a moment before speaking and a release a moment after; "after speech starts" counts from the
end of the lead, "after end of speech" from the release (the `end` frame)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
import wave
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connections
from django.utils import timezone

from chat.models import Assistant
from chat.services import conversation_create
from common.bench import as_json, percentile, table
from inference.bench_stack import BenchStack
from inference.selectors import route_resolve

QUESTIONS = [
    "what is the capital of France",
    "how do I reset my password",
    "name three primary colours",
    "what time zone is London in",
    "give me a tip for a job interview",
]
FRAME = 640
LEAD_SECONDS, TRAIL_SECONDS = 0.2, 0.3
TARGETS = {  # stage: (p50, p99) in ms, None where the issue sets none
    "first_partial_ms": (400, 900), "stt_final_ms": (200, None), "voice_first_audio_ms": (800, 1200),
    "barge_in_ms": (300, None),
}


class Command(BaseCommand):
    help = "Run N voice turns through the WebSocket stack and print p50/p99 of every stage."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--turns", type=int, default=10)
        parser.add_argument("--assistant", default="general")

    def handle(self, *args: object, turns: int, assistant: str, **options: object) -> None:
        from inference.services import bundled_models_register

        bundled_models_register()
        helper = Assistant.objects.get(slug=assistant)
        models = [route_resolve(model=helper.route_alias, task="chat")[1][0].name,
                  route_resolve(model="stt-default", task="stt")[1][0].name,
                  route_resolve(model="tts-default", task="tts")[1][0].name]
        with tempfile.TemporaryDirectory() as tmp, BenchStack(models=models) as stack:
            clips = [_clip(question, Path(tmp) / f"q{i}.wav") for i, question in enumerate(QUESTIONS)]
            conversation = conversation_create(user=stack.user, assistant=helper)
            cookie = stack.session_cookie()
            connections.close_all()
            asyncio.run(_turn(stack, cookie, conversation.pk, clips[0]))  # warm-up
            results = []
            measured_from = timezone.now()
            for i in range(turns):
                conversation = conversation_create(user=stack.user, assistant=helper)
                connections.close_all()
                results.append(asyncio.run(_turn(stack, cookie, conversation.pk, clips[i % len(clips)])))
            decoding = _stt_work(user=stack.user, since=measured_from, turns=turns,
                                 speech_s=sum(len(clips[i % len(clips)]) / 32000 - LEAD_SECONDS - TRAIL_SECONDS
                                              for i in range(turns)))
            barge_ins = [asyncio.run(_barge_in(stack, cookie, conversation_create(user=stack.user, assistant=helper).pk,
                                                clips[i % len(clips)], clips[(i + 1) % len(clips)]))
                         for i in range(max(3, turns // 2))]
        figures: dict[str, object] = {"turns": turns, "barge_ins": len(barge_ins),
                                      "stt_final_reused": sum(1 for r in results if r.get("stt_reused")),
                                      "speculative_replies_kept": sum(1 for r in results
                                                                      if r.get("speculation") == "used"),
                                      **decoding}
        rows = []
        for key, label in (
            ("first_partial_ms", "first partial after speech starts"),
            ("stt_final_ms", "final transcript after end of speech"),
            ("llm_ttft_ms", "LLM first token after transcript"),
            ("tts_first_audio_ms", "TTS first audio of first piece"),
            ("voice_first_audio_ms", "end of speech → first reply audio"),
            ("client_first_audio_ms", "…measured at the client"),
            ("last_word_first_audio_ms", "…from the last word (the release comes 0.3 s after it)"),
            ("barge_in_ms", "barge-in: speech starts → playback stopped"),
        ):
            values = [r[key] for r in (barge_ins if key == "barge_in_ms" else results) if r.get(key) is not None]
            if not values:
                continue
            p50, p99 = percentile(values, 50), percentile(values, 99)
            figures[f"{key}_p50"], figures[f"{key}_p99"] = p50, p99
            verdict = ""
            if key in TARGETS:
                goal50, goal99 = TARGETS[key]
                met = p50 <= goal50 and (goal99 is None or p99 <= goal99)
                verdict = f"p50 <= {goal50}" + (f", p99 <= {goal99}" if goal99 else "")
                verdict += ": met" if met else ": MISSED"
            rows.append((label + " p50 / p99", f"{p50:.0f} / {p99:.0f}", "ms", verdict))
        rows.append(("final transcripts that reused a partial decode", f"{figures['stt_final_reused']} of {turns}",
                     "", ""))
        rows.append(("replies begun during the pause and kept", f"{figures['speculative_replies_kept']} of {turns}",
                     "", ""))
        rows.append(("speech-to-text decodes per turn (partials and final)", f"{figures['stt_decodes_per_turn']:.1f}",
                     "", ""))
        rows.append(("speech-to-text worker busy per second of speech", f"{figures['stt_busy_per_speech_s']:.3f}",
                     "s/s", "deploy/capacity.py's STT work"))
        self.stdout.write(table(rows))
        self.stdout.write(as_json("voice", figures))


def _stt_work(*, user, since, turns: int, speech_s: float) -> dict[str, float]:
    """What the measured turns cost the speech-to-text worker, from the ledger: every decode (the partials
    while the user speaks and the final) is a usage record with its duration."""
    from django.db.models import Count, Sum

    from inference.models import UsageRecord

    row = UsageRecord.objects.filter(user=user, task="stt", created_at__gte=since).aggregate(
        decodes=Count("id"), busy_ms=Sum("duration_ms"))
    return {"stt_decodes_per_turn": (row["decodes"] or 0) / max(1, turns),
            "stt_speech_s_per_turn": speech_s / max(1, turns),
            "stt_busy_per_speech_s": (row["busy_ms"] or 0) / 1000 / max(speech_s, 1e-9)}


def _clip(text: str, path: Path) -> bytes:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-s", "160", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path), "pad", str(LEAD_SECONDS),
                    str(TRAIL_SECONDS)], check=True)
    with wave.open(str(path)) as clip:
        return clip.readframes(clip.getnframes())


async def _turn(stack: BenchStack, cookie: str, conversation_id: int, pcm: bytes) -> dict:
    import websockets

    url = stack.url.replace("http://", "ws://") + f"/ws/voice/{conversation_id}/"
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": stack.url}) as socket:
        await socket.send(json.dumps({"type": "start", "sample_rate": 16000}))
        started = time.perf_counter()
        first_partial = None

        async def listen_for_partials() -> None:
            nonlocal first_partial
            while True:
                frame = json.loads(await socket.recv())
                if frame["type"] == "partial" and first_partial is None:
                    first_partial = (time.perf_counter() - started - LEAD_SECONDS) * 1000

        listener = asyncio.create_task(listen_for_partials())
        for offset in range(0, len(pcm), FRAME):  # real time: one 20 ms frame every 20 ms
            await socket.send(pcm[offset:offset + FRAME])
            await asyncio.sleep(max(0.0, started + (offset + FRAME) / 32000 - time.perf_counter()))
        listener.cancel()
        try:
            await listener
        except asyncio.CancelledError:
            pass
        await socket.send(json.dumps({"type": "end"}))
        ended = time.perf_counter()
        result: dict = {"first_partial_ms": first_partial}
        while True:
            message = await socket.recv()
            if isinstance(message, bytes):
                result.setdefault("client_first_audio_ms", (time.perf_counter() - ended) * 1000)
                continue
            frame = json.loads(message)
            if frame["type"] == "metrics":
                if "client_first_audio_ms" in result:
                    result["last_word_first_audio_ms"] = result["client_first_audio_ms"] + TRAIL_SECONDS * 1000
                result.update({k: frame.get(k) for k in ("stt_final_ms", "llm_ttft_ms", "tts_first_audio_ms",
                                                          "voice_first_audio_ms", "stt_reused", "speculation")})
            elif frame["type"] == "error":
                raise RuntimeError(frame["message"])
            elif frame["type"] == "done":
                return result


async def _barge_in(stack: BenchStack, cookie: str, conversation_id: int, question: bytes, interruption: bytes) -> dict:
    """Ask, and once the reply's audio plays, speak again hands-free (the page's microphone opens while a
    reply plays): the time from the interruption's speech starting to the frame that stops playback
    (`speech_start`, on which the page silences the reply; `audio_end` if the reply was still being made)."""
    import websockets

    url = stack.url.replace("http://", "ws://") + f"/ws/voice/{conversation_id}/"
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": stack.url}) as socket:
        await socket.send(json.dumps({"type": "start", "sample_rate": 16000}))
        for offset in range(0, len(question), FRAME):
            await socket.send(question[offset:offset + FRAME])
        await socket.send(json.dumps({"type": "end"}))
        while not isinstance(await socket.recv(), bytes):  # the reply's first audio
            pass
        await socket.send(json.dumps({"type": "start", "sample_rate": 16000, "mode": "vad"}))
        started = time.perf_counter()
        stopped: float | None = None

        async def listen() -> None:
            nonlocal stopped
            while stopped is None:
                message = await socket.recv()
                if isinstance(message, str) and json.loads(message).get("type") in ("speech_start", "audio_end"):
                    stopped = time.perf_counter()

        listener = asyncio.create_task(listen())
        for offset in range(0, len(interruption), FRAME):
            if stopped is not None:
                break
            await socket.send(interruption[offset:offset + FRAME])
            await asyncio.sleep(max(0.0, started + (offset + FRAME) / 32000 - time.perf_counter()))
        try:
            await asyncio.wait_for(listener, timeout=10)
        except TimeoutError:
            return {"barge_in_ms": None}
        return {"barge_in_ms": (stopped - started - LEAD_SECONDS) * 1000}
