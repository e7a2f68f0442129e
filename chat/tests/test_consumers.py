"""The text chat socket through the real ASGI stack and a real gpu worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from accounts.tests.factories import user_make
from chat.models import Message
from chat.tests.factories import conversation_make, socket_connect
from common.heartbeat import workers_alive
from common.stack import wait_for, worker_start

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("socket_tasks_reaped")]

LONG = "Write a long story about a lighthouse keeper and a storm, in many paragraphs."


async def _frames_until(communicator, kinds: set[str], timeout: float = 90) -> list[dict]:
    frames = []
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        frames.append(frame)
        if frame["type"] in kinds:
            return frames


@pytest.fixture
def chat(celery_worker, bundled_models):
    user = user_make()
    return user, conversation_make(user=user)


async def _open(chat):
    user, conversation = chat
    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
    assert connected
    return communicator


async def test_a_turn_streams_deltas_then_done_and_metrics(chat):
    communicator = await _open(chat)

    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "Say hello in five words."}))
    frames = await _frames_until(communicator, {"metrics", "error"})

    kinds = [f["type"] for f in frames]
    assert kinds[0] == "start" and "delta" in kinds and kinds[-2:] == ["done", "metrics"]
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert frames[-1]["ttft_ms"] > 0 and frames[-1]["model"]
    messages = await sync_to_async(list)(Message.objects.order_by("id").values("role", "status", "text"))
    assert [(m["role"], m["status"]) for m in messages] == [("user", "done"), ("assistant", "done")]
    assert messages[1]["text"] == text
    await communicator.disconnect()


async def test_stop_cancels_and_keeps_the_partial_reply_as_interrupted(chat):
    communicator = await _open(chat)
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": LONG}))
    await _frames_until(communicator, {"delta"})

    await communicator.send_to(text_data=json.dumps({"type": "stop"}))
    frames = await _frames_until(communicator, {"done"})

    assert frames[-1]["finish_reason"] == "stopped"
    reply = await sync_to_async(Message.objects.get)(role="assistant")
    assert reply.status == "interrupted" and reply.text
    # The socket is still usable and the conversation accepts the next turn.
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "Now say OK."}))
    assert (await _frames_until(communicator, {"done", "error"}))[-1]["type"] == "done"
    await communicator.disconnect()


async def test_disconnect_cancels_the_generation(chat):
    communicator = await _open(chat)
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": LONG}))
    await _frames_until(communicator, {"delta"})

    await communicator.disconnect()

    reply = await sync_to_async(Message.objects.get)(role="assistant")
    assert reply.status == "interrupted"


async def test_a_second_generation_in_the_same_conversation_is_refused(chat):
    first = await _open(chat)
    second = await _open(chat)
    await first.send_to(text_data=json.dumps({"type": "user_message", "text": LONG}))
    await _frames_until(first, {"delta"})

    await second.send_to(text_data=json.dumps({"type": "user_message", "text": "And another thing"}))
    frame = json.loads(await second.receive_from(timeout=10))

    assert frame["type"] == "error" and frame["code"] == "busy"
    await first.send_to(text_data=json.dumps({"type": "user_message", "text": "again on the same socket"}))
    frame = json.loads(await first.receive_from(timeout=10))
    while frame["type"] == "delta":
        frame = json.loads(await first.receive_from(timeout=10))
    assert frame["type"] == "error" and frame["code"] == "busy"
    await first.disconnect()
    await second.disconnect()


async def test_an_outsider_is_closed_with_4403(chat):
    _, conversation = chat
    outsider = await sync_to_async(user_make)()

    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", outsider)
    output = await communicator.receive_output(timeout=5)

    assert output == {"type": "websocket.close", "code": 4403}


async def test_anonymous_is_closed_with_4401(chat):
    _, conversation = chat

    communicator, _, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", None)
    output = await communicator.receive_output(timeout=5)

    assert output == {"type": "websocket.close", "code": 4401}


@pytest.mark.parametrize(("send", "code"), [
    ({"text_data": "not json"}, "invalid_json"),
    ({"text_data": json.dumps(["user_message"])}, "invalid_frame"),
    ({"text_data": json.dumps({"type": "launch_missiles"})}, "unknown_type"),
    ({"text_data": json.dumps({"type": "user_message", "text": ""})}, "empty_message"),
    ({"text_data": json.dumps({"type": "user_message", "text": 42})}, "empty_message"),
    ({"bytes_data": b"\x00\x01\x02"}, "binary_not_supported"),
    ({"text_data": json.dumps({"type": "user_message", "text": "x" * 70000})}, "frame_too_large"),
])
async def test_malformed_frames_get_an_error_frame_and_the_socket_stays_usable(chat, send, code):
    communicator = await _open(chat)

    await communicator.send_to(**send)
    frame = json.loads(await communicator.receive_from(timeout=10))

    assert frame["type"] == "error" and frame["code"] == code and frame["message"]
    await communicator.send_to(text_data=json.dumps({"type": "ping"}))
    assert json.loads(await communicator.receive_from(timeout=10)) == {"type": "pong"}
    assert await sync_to_async(Message.objects.count)() == 0
    await communicator.disconnect()


async def test_a_worker_killed_mid_stream_interrupts_the_reply_and_the_next_turn_works(chat, child_env, tmp_path):
    # A dedicated worker on its own queue, beating every second, so its death is noticed quickly.
    env = dict(child_env, PARLEY_HEARTBEAT_INTERVAL="1", PARLEY_HEARTBEAT_TTL="3")
    hostname = f"doomed-{os.getpid()}@localhost"
    doomed = worker_start(env=env, queues="gpu-doomed", hostname=hostname, log=tmp_path / "doomed.log")
    await sync_to_async(wait_for)(lambda: any(w["hostname"] == hostname for w in workers_alive()), timeout=60,
                                  what="the doomed worker", log=tmp_path / "doomed.log")
    communicator = await _open(chat)
    try:
        with override_settings(PARLEY_GPU_QUEUE="gpu-doomed"):
            await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": LONG}))
            await _frames_until(communicator, {"delta"})
            os.kill(doomed.pid, signal.SIGKILL)
            frames = await _frames_until(communicator, {"error", "done"}, timeout=60)
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.wait()

    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "worker_lost"
    reply = await sync_to_async(Message.objects.get)(role="assistant")
    assert reply.status == "interrupted" and reply.text
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "Say OK."}))
    assert (await _frames_until(communicator, {"done", "error"}))[-1]["type"] == "done"
    await asyncio.sleep(0)
    await communicator.disconnect()
