"""The voice socket: real espeak-ng speech in, transcripts and Piper audio out, bad frames refused."""

from __future__ import annotations

import asyncio
import json
import wave

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.tests.factories import user_make
from billing.tests.factories import free_plan_set
from chat.models import Message
from chat.tests.factories import conversation_make, socket_connect
from chat.voice import SentenceSplitter, speakable
from inference.models import UsageRecord
from inference.tests.speech import speech_clip

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("socket_tasks_reaped")]

FRAME = 640  # 20 ms of 16 kHz PCM16


@pytest.fixture
def voice(celery_worker, bundled_models):
    user = user_make()
    _warm_speech_to_text(user)
    return user, conversation_make(user=user)


def _warm_speech_to_text(user) -> None:
    """Load whisper in the worker first: partials are about a warm model, not a cold start."""
    from inference.services import Caller, transcribe

    transcribe(caller=Caller(user=user), audio=b"\x00" * 16000, model="whisper-tiny.en", language="en", preview=True)


async def _open(voice):
    user, conversation = voice
    communicator, connected, _ = await socket_connect(f"/ws/voice/{conversation.pk}/", user)
    assert connected
    return communicator


def _pcm(path) -> bytes:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 16000
        return wav.readframes(wav.getnframes())


async def _speak(communicator, pcm: bytes, realtime: bool = True) -> None:
    await communicator.send_to(text_data=json.dumps({"type": "start", "sample_rate": 16000}))
    for offset in range(0, len(pcm), FRAME):
        await communicator.send_to(bytes_data=pcm[offset:offset + FRAME])
        if realtime:
            await asyncio.sleep(0.02)


async def _collect(communicator, until: str = "done", timeout: float = 120) -> tuple[list[dict], int]:
    frames, audio_bytes = [], 0
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output.get("bytes") is not None:
            audio_bytes += len(output["bytes"])
            continue
        frame = json.loads(output["text"])
        frames.append(frame)
        if frame["type"] == until:
            return frames, audio_bytes


async def test_a_spoken_question_gets_transcripts_a_reply_and_audio(voice, tmp_path):
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("what is the capital of France", tmp_path))

    await _speak(communicator, pcm)
    # Partials come while the user still speaks; on a busy machine the first may land after the last
    # frame, so the turn ends only once one arrived (the push-to-talk button is still held).
    early, _ = await _collect(communicator, until="partial", timeout=60)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    frames, audio_bytes = await _collect(communicator)
    frames = early + frames

    kinds = [f["type"] for f in frames]
    transcript = next(f for f in frames if f["type"] == "transcript")["text"].lower()
    assert "capital" in transcript and "france" in transcript
    assert "partial" in kinds and kinds.index("partial") < kinds.index("transcript")
    audio_start = next(f for f in frames if f["type"] == "audio_start")
    assert audio_start == {"type": "audio_start", "sample_rate": 22050, "format": "pcm16"}
    assert kinds.index("audio_start") < kinds.index("audio_end") < kinds.index("done")
    assert audio_bytes / 2 / 22050 > 0.5
    metrics = next(f for f in frames if f["type"] == "metrics")
    for key in ("stt_final_ms", "llm_ttft_ms", "tts_first_audio_ms", "voice_first_audio_ms"):
        assert metrics[key] > 0
    messages = await sync_to_async(list)(Message.objects.order_by("id").values_list("role", "via", "status"))
    assert messages == [("user", "voice", "done"), ("assistant", "voice", "done")]
    await communicator.disconnect()
    # The partials are ledger rows metered as previews (no request); the turn's transcript is the one request.
    meterings = await sync_to_async(list)(UsageRecord.objects.filter(task="stt").values_list("metering", flat=True))
    assert meterings.count("stt") == 1 and meterings.count("preview") >= 2, meterings


async def test_speaking_again_interrupts_the_reply(voice, tmp_path):
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("tell me a long story about dragons", tmp_path))
    await _speak(communicator, pcm, realtime=False)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    await _collect(communicator, until="delta")

    await communicator.send_to(text_data=json.dumps({"type": "start", "sample_rate": 16000}))
    frames, _ = await _collect(communicator, until="done", timeout=30)

    assert frames[-1]["finish_reason"] == "interrupted"
    reply = await sync_to_async(Message.objects.get)(role="assistant")
    assert reply.status == "interrupted"
    await communicator.disconnect()


async def test_hands_free_ends_the_turn_at_a_pause_and_ignores_the_audio_sent_meanwhile(voice, tmp_path):
    """The browser streams until it hears `speech_end`, and a hands-free page keeps its microphone open
    between turns: that audio is dropped silently, while malformed frames are still refused."""
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("what is the capital of France", tmp_path))
    streaming = asyncio.Event()
    streaming.set()

    async def microphone() -> None:
        await communicator.send_to(text_data=json.dumps({"type": "start", "sample_rate": 16000, "mode": "vad"}))
        for offset in range(0, len(pcm), FRAME):
            await communicator.send_to(bytes_data=pcm[offset:offset + FRAME])
            await asyncio.sleep(0.02)
        while streaming.is_set():  # silence, through the pause and on through the whole reply
            await communicator.send_to(bytes_data=b"\x00" * FRAME)
            await asyncio.sleep(0.02)

    sender = asyncio.create_task(microphone())
    heard, _ = await _collect(communicator, until="speech_end", timeout=60)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))  # a late release: no `not_started`
    frames, audio_bytes = await _collect(communicator)
    streaming.clear()
    await sender
    frames = heard + frames

    assert heard[-1] == {"type": "speech_end", "reason": "silence"}
    assert [f for f in frames if f["type"] == "error"] == []
    transcript = next(f for f in frames if f["type"] == "transcript")["text"].lower()
    assert "capital" in transcript and frames[-1]["type"] == "done" and audio_bytes > 0
    await communicator.send_to(bytes_data=b"\x00" * FRAME)
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=10)) == {"type": "pong"}
    for malformed, code in ((b"\x00" * 641, "odd_frame_length"), (b"\x00" * 64000, "frame_too_large")):
        await communicator.send_to(bytes_data=malformed)
        assert json.loads(await communicator.receive_from(timeout=10))["code"] == code
    await communicator.disconnect()


@pytest.mark.parametrize(("frames", "code"), [
    ([{"bytes_data": b"\x00" * FRAME}], "audio_before_start"),
    ([{"text_data": json.dumps({"type": "start", "sample_rate": 16000})}, {"bytes_data": b"\x00" * 641}],
     "odd_frame_length"),
    ([{"text_data": json.dumps({"type": "start", "sample_rate": 16000})}, {"bytes_data": b"\x00" * 64000}],
     "frame_too_large"),
    ([{"text_data": json.dumps({"type": "start", "sample_rate": 44100})}], "unsupported_sample_rate"),
    ([{"text_data": json.dumps({"type": "end"})}], "not_started"),
    ([{"text_data": "{{"}], "invalid_json"),
    ([{"text_data": json.dumps({"type": "sing"})}], "unknown_type"),
])
async def test_bad_frames_get_an_error_and_the_socket_stays_usable(voice, frames, code):
    communicator = await _open(voice)

    for frame in frames:
        await communicator.send_to(**frame)
    reply = json.loads(await communicator.receive_from(timeout=10))

    assert reply["type"] == "error" and reply["code"] == code and reply["message"]
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=10)) == {"type": "pong"}
    await communicator.disconnect()


@override_settings(PARLEY_VOICE_MAX_SECONDS=1)
async def test_an_over_long_utterance_is_cut_and_the_user_told(voice, tmp_path):
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("what is the capital of France and why is it famous", tmp_path))

    await _speak(communicator, pcm, realtime=False)
    frames, _ = await _collect(communicator, until="transcript")

    error = next(f for f in frames if f["type"] == "error")
    assert error["code"] == "utterance_too_long" and "1 seconds" in error["message"]
    await communicator.disconnect()


async def test_an_outsider_is_closed_with_4403(voice):
    _, conversation = voice
    communicator, _, _ = await socket_connect(f"/ws/voice/{conversation.pk}/", await sync_to_async(user_make)())

    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


def test_sentence_splitter_speaks_early_and_loses_no_words():
    splitter = SentenceSplitter()
    reply = "Paris is the capital of France. It has been since the tenth century, more or less! Visit soon."
    pieces = []
    for token in reply.split(" "):
        pieces += splitter.push(token + " ")
    pieces += splitter.flush()

    assert pieces[0].strip() == "Paris is the capital of France."
    assert " ".join(p.strip() for p in pieces) == reply
    assert speakable("**Bold** and `code` [1]") == "Bold and code"


def _spent(user_id: int, kind: str) -> int:
    import time as clock

    from common.redis_connection import redis_client

    day = int(clock.time() // 86400)
    return int(redis_client().get(f"parley:quota:user:{user_id}:{kind}:d{day}") or 0)


async def test_a_voice_turn_reserves_and_settles_audio_seconds_and_speech_characters(voice, tmp_path):
    """Voice used to skip quotas: the utterance's seconds and the spoken characters are counted,
    once each (partials while speaking are previews and bill nothing)."""
    import math

    from chat.voice import speakable

    user, _ = voice
    asd_before, cpd_before = await sync_to_async(_spent)(user.pk, "asd"), await sync_to_async(_spent)(user.pk, "cpd")
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("what is the capital of France", tmp_path))

    await _speak(communicator, pcm)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    frames, _ = await _collect(communicator)
    await communicator.disconnect()

    reply = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert await sync_to_async(_spent)(user.pk, "asd") - asd_before == math.ceil(len(pcm) / 2 / 16000)
    spoken = await sync_to_async(_spent)(user.pk, "cpd") - cpd_before
    # Every piece is spoken without markdown symbols; pieces are cut at spaces, which are not spoken twice.
    assert 0 < spoken <= len(speakable(reply)) + 8


async def test_a_voice_turn_past_the_audio_budget_gets_rate_limited(voice, tmp_path):
    await sync_to_async(free_plan_set)(voice_minutes_per_day=0)
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("what is the capital of France", tmp_path))
    await _speak(communicator, pcm, realtime=False)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    frames, _ = await _collect(communicator, until="error")
    await communicator.disconnect()

    assert frames[-1]["code"] == "plan_limit" and "minutes of voice per day" in frames[-1]["message"]
    assert not await sync_to_async(Message.objects.filter(role="assistant").exists)()


def _requests_since(user_id: int, since: float) -> int:
    """Requests counted against the user's per-minute limit in every minute from `since` to now."""
    import time as clock

    from common.redis_connection import redis_client

    minutes = range(int(since // 60), int(clock.time() // 60) + 1)
    return sum(int(redis_client().get(f"parley:quota:user:{user_id}:rpm:m{m}") or 0) for m in minutes)


async def _pause(communicator, seconds: float) -> None:
    """Silence with the button still held, in real time."""
    for _ in range(int(seconds / 0.02)):
        await communicator.send_to(bytes_data=b"\x00" * FRAME)
        await asyncio.sleep(0.02)


async def test_a_pause_starts_the_reply_early_and_the_release_keeps_it(voice, tmp_path):
    communicator = await _open(voice)
    pcm = _pcm(speech_clip("what is the capital of France", tmp_path))

    await _speak(communicator, pcm)
    await _pause(communicator, 1.0)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    frames, _ = await _collect(communicator)
    await communicator.disconnect()

    metrics = next(f for f in frames if f["type"] == "metrics")
    assert metrics["speculation"] == "used" and metrics["speculations"] == 1
    transcript = next(f for f in frames if f["type"] == "transcript")["text"]
    messages = await sync_to_async(list)(Message.objects.order_by("id").values_list("role", "text", "status"))
    assert [(role, status) for role, _, status in messages] == [("user", "done"), ("assistant", "done")]
    assert messages[0][1] == transcript and "capital" in transcript.lower()


async def test_a_speculative_reply_is_withdrawn_without_a_trace_when_the_user_goes_on(voice, tmp_path):
    """The user pauses mid-thought with the button held: a reply begins on what they said so far, and is
    withdrawn when they speak again. It leaves no message and counts as no request; the turn answers the
    whole utterance."""
    user, _ = voice
    communicator = await _open(voice)
    first = _pcm(speech_clip("what is the capital of France", tmp_path, name="first"))
    second = _pcm(speech_clip("and how many people live there", tmp_path, name="second"))
    import time as clock

    since = clock.time()
    requests_before = await sync_to_async(_requests_since)(user.pk, since)

    await _speak(communicator, first)
    await _pause(communicator, 1.0)
    for offset in range(0, len(second), FRAME):
        await communicator.send_to(bytes_data=second[offset:offset + FRAME])
        await asyncio.sleep(0.02)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    frames, _ = await _collect(communicator)
    await communicator.disconnect()

    metrics = next(f for f in frames if f["type"] == "metrics")
    assert metrics["speculations_withdrawn"] >= 1
    assert metrics.get("speculation") in (None, "used")  # a second pause may begin a reply that is kept
    transcript = next(f for f in frames if f["type"] == "transcript")["text"].lower()
    assert "capital" in transcript and "people" in transcript
    messages = await sync_to_async(list)(Message.objects.order_by("id").values_list("role", "text"))
    assert [role for role, _ in messages] == ["user", "assistant"]
    assert "people" in messages[0][1].lower()
    # Requests counted: the transcription, the reply and each spoken piece; the withdrawn reply was given
    # back (its ledger row says canceled: the worker may have begun it).
    reply = await sync_to_async(Message.objects.get)(role="assistant")
    chats = await sync_to_async(dict)(UsageRecord.objects.filter(task="chat").values_list("request_id", "outcome"))
    assert chats.get(reply.request_id) == "ok" and set(chats.values()) <= {"ok", "canceled"}
    spoken = await sync_to_async(UsageRecord.objects.filter(task="tts").count)()
    assert await sync_to_async(_requests_since)(user.pk, since) - requests_before == 1 + 1 + spoken


async def test_hands_free_speech_over_a_playing_reply_interrupts_it(voice, tmp_path):
    """The page opens its microphone as soon as the reply plays (`barge_in`): quiet does not interrupt it,
    speech does, and what was said is answered."""
    communicator = await _open(voice)
    question = _pcm(speech_clip("tell me a long story about dragons", tmp_path, name="question"))
    interruption = _pcm(speech_clip("what is the capital of France", tmp_path, name="interruption"))
    await _speak(communicator, question, realtime=False)
    await communicator.send_to(text_data=json.dumps({"type": "end"}))
    await _collect(communicator, until="audio_start")

    await communicator.send_to(text_data=json.dumps({"type": "start", "sample_rate": 16000, "mode": "vad",
                                                     "barge_in": True}))
    await _pause(communicator, 0.5)
    speaking = asyncio.create_task(_pause(communicator, 0))
    for offset in range(0, len(interruption), FRAME):
        await communicator.send_to(bytes_data=interruption[offset:offset + FRAME])
        await asyncio.sleep(0.02)
    await speaking
    tail = asyncio.create_task(_pause(communicator, 1.5))
    frames, _ = await _collect(communicator, until="speech_end", timeout=60)
    await tail
    frames += (await _collect(communicator))[0]
    await communicator.disconnect()

    kinds = [f["type"] for f in frames]
    assert "speech_start" in kinds
    assert [f for f in frames if f["type"] == "error"] == []
    first_reply = await sync_to_async(Message.objects.filter(role="assistant").order_by("id").first)()
    if first_reply.status != "done":  # still being written when the user spoke: stopped there
        assert first_reply.status == "interrupted"
        assert {"type": "done", "finish_reason": "interrupted"} in frames
        assert kinds.index("done") > kinds.index("speech_start")
    transcript = next(f for f in frames if f["type"] == "transcript")["text"].lower()
    assert "capital" in transcript and "dragons" not in transcript
    assert frames[-1]["type"] == "done" and frames[-1].get("finish_reason") != "interrupted"
