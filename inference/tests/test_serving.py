"""Inference's one face, tested at the seams between apps: every path reserves and settles its
quota, carries the API key into the ledger, names the model that answered, and stops the worker
when its client goes away. Everything is real (worker, Daphne, Redis, Postgres, small models);
nothing is mocked."""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import time
import wave
from pathlib import Path

import pytest
from django.test import Client, override_settings

from accounts.tests.factories import user_make
from billing.tests.factories import free_plan_set
from chat.models import Message
from chat.tests.factories import conversation_make
from common.heartbeat import heartbeat_store
from common.redis_connection import redis_client
from common.stack import daphne_start, process_stop, wait_for
from config import services
from inference.models import UsageRecord
from inference.tests.factories import api_key_make, broken_chat_route
from knowledge.tests.factories import collection_make, document_ready

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.engine,
              pytest.mark.usefixtures("socket_tasks_reaped")]

FACT = "The lighthouse on Skerry Point was built in 1872 and its lamp burns paraffin oil."


def _api(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def _sse(response) -> str:
    """The whole body of an SSE response made by an async generator (the test client leaves it unread)."""
    import asyncio

    if not response.is_async:
        return b"".join(response.streaming_content).decode()

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return asyncio.run(read()).decode()


def _quota_used(user_id: int, kind: str) -> int:
    day = int(time.time() // 86400)
    return int(redis_client().get(f"parley:quota:user:{user_id}:{kind}:d{day}") or 0)


def _speech_wav(tmp_path: Path, text: str) -> bytes:
    """Real speech from espeak-ng, as 16 kHz mono WAV (what a client uploads)."""
    import subprocess

    raw, out = tmp_path / "raw.wav", tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    return out.read_bytes()


def _wav_seconds(data: bytes, tmp_path: Path) -> float:
    path = tmp_path / "measure.wav"
    path.write_bytes(data)
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


# ----------------------------------------------------------------------------- quotas on every path


def test_sse_chat_honours_the_api_keys_token_limit(bundled_models):
    """The SSE chat endpoint used to ignore per-key limits: the key's budget now refuses the turn."""
    user = user_make()
    conversation = conversation_make(user=user)
    _, secret = api_key_make(user=user, tokens_per_day_limit=20)

    response = _api(secret).post(f"/api/conversations/{conversation.pk}/messages", {"text": "Say hello."},
                                 content_type="application/json")

    # Refused before any stream starts: an HTTP 429 with the API's error body and Retry-After.
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and "this API key" in error["message"]
    assert not Message.objects.filter(role="assistant").exists()


@pytest.mark.worker
def test_a_knowledge_answer_on_a_key_with_a_tiny_budget_is_429(celery_worker, bundled_models):
    user = user_make()
    collection = collection_make(user=user)
    document_ready(collection=collection, user=user, text=FACT * 3, name="lighthouse.txt")
    _, secret = api_key_make(user=user, tokens_per_day_limit=60)

    response = _api(secret).post("/api/knowledge/query?answer=1", {"query": "When was the lighthouse built?"},
                                 content_type="application/json")

    assert response.status_code == 429, response.content
    assert "this API key" in response.json()["error"]["message"]
    assert int(response["Retry-After"]) > 0
    assert not UsageRecord.objects.filter(task="chat").exists()  # refused before any model ran


@pytest.mark.worker
def test_usage_rows_from_every_path_carry_the_api_key(celery_worker, bundled_models, tmp_path):
    user = user_make()
    collection = collection_make(user=user)
    document_ready(collection=collection, user=user, text=FACT * 3, name="lighthouse.txt")
    conversation = conversation_make(user=user)
    key, secret = api_key_make(user=user)
    api = _api(secret)
    before = set(UsageRecord.objects.values_list("id", flat=True))

    chat = api.post("/v1/chat/completions", {"model": "chat-fast", "max_tokens": 8,
                                             "messages": [{"role": "user", "content": "Hi"}]},
                    content_type="application/json")
    embeddings = api.post("/v1/embeddings", {"model": "embed-default", "input": ["one", "two"]},
                          content_type="application/json")
    speech = api.post("/v1/audio/speech", {"model": "tts-default", "input": "Hello there.", "response_format": "wav"},
                      content_type="application/json")
    wav = _speech_wav(tmp_path, "The lighthouse keeper lit the lamp.")
    from django.core.files.uploadedfile import SimpleUploadedFile

    transcript = api.post("/v1/audio/transcriptions", {"model": "stt-default",
                                                       "file": SimpleUploadedFile("a.wav", wav, "audio/wav")})
    answer = api.post("/api/knowledge/query", {"query": "When was the lighthouse built?", "answer": True,
                                               "max_tokens": 16}, content_type="application/json")
    sse = _sse(api.post(f"/api/conversations/{conversation.pk}/messages", {"text": "Say hi."},
                        content_type="application/json"))

    assert [r.status_code for r in (chat, embeddings, speech, transcript, answer)] == [200] * 5
    assert "event: done" in sse
    rows = UsageRecord.objects.exclude(id__in=before).filter(outcome="ok")
    # The SSE turn settles its usage as the stream closes, a moment after the client read `done`.
    wait_for(lambda: rows.filter(api_key=key, task="chat").count() >= 3, timeout=30,
             what="the usage rows of the three chat paths")
    by_task = {}
    for row in rows:
        by_task.setdefault(row.task, []).append(row)
    assert {"chat", "embed", "stt", "tts"} <= set(by_task)
    # Every row made by these calls names the key: /v1 (4 kinds), the knowledge answer and its
    # query embedding, and the SSE chat turn. Ingest (done above, with no key) is not among them.
    keyed = rows.filter(api_key=key)
    assert keyed.filter(task="chat").count() >= 3  # /v1, knowledge answer, SSE turn
    assert keyed.filter(task="tts").exists() and keyed.filter(task="stt").exists()
    assert keyed.filter(task="embed").count() >= 2  # /v1 and the knowledge query
    # Each row says how the plan counted it (the usage page counts requests by it): the knowledge answer's
    # query embedding is part of that request, not one of its own.
    assert not rows.filter(metering="").exists()
    assert dict(keyed.filter(task__in=["stt", "tts"]).values_list("task", "metering")) == {"stt": "stt", "tts": "tts"}
    embed_meterings = sorted(keyed.filter(task="embed").values_list("metering", flat=True))
    assert embed_meterings.count("embed") == 1 and set(embed_meterings) == {"embed", "lookup"}, embed_meterings
    assert set(keyed.filter(task="chat").values_list("metering", flat=True)) <= {"chat", "summary", "title"}
    assert _quota_used(user.pk, "asd") == math.ceil(_wav_seconds(wav, tmp_path))
    assert _quota_used(user.pk, "cpd") == len("Hello there.")


@pytest.mark.worker
def test_transcription_beyond_the_daily_audio_budget_is_429(celery_worker, bundled_models, tmp_path):
    free_plan_set(voice_minutes_per_day=0)
    _, secret = api_key_make()
    wav = _speech_wav(tmp_path, "This sentence takes more than one second to say out loud.")
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = _api(secret).post("/v1/audio/transcriptions", {"model": "stt-default",
                                                              "file": SimpleUploadedFile("a.wav", wav, "audio/wav")})

    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "plan_limit" and error["limit"] == "voice_minutes_per_day"
    assert "minutes of voice per day your Free plan includes" in error["message"]


# ----------------------------------------------------------------------------- honest fallback


@pytest.mark.worker
def test_a_fallback_reply_names_its_model_and_why_in_v1(celery_worker, bundled_models):
    broken_chat_route()
    for key in redis_client().scan_iter("parley:breaker:*"):
        redis_client().delete(key)
    _, secret = api_key_make()

    response = _api(secret).post("/v1/chat/completions", {
        "model": "chat-broken-first", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
        content_type="application/json")

    body = response.json()
    assert response.status_code == 200
    assert body["model"] == "smollm2-135m" and response["X-Parley-Model"] == "smollm2-135m"
    assert body["parley"]["fallback"] is True
    assert "broken-chat failed to load" in body["parley"]["fallback_reason"]


@pytest.mark.worker
async def test_a_fallback_reply_names_its_model_in_the_chat_frames(celery_worker, bundled_models):
    from asgiref.sync import sync_to_async

    from chat.services import assistant_create
    from chat.services import conversation_create as create
    from chat.tests.factories import socket_connect

    def setup():
        broken_chat_route()
        for key in redis_client().scan_iter("parley:breaker:*"):
            redis_client().delete(key)
        user = user_make()
        assistant = assistant_create(owner=user, name="Fragile", system_prompt="Be brief.",
                                     route_alias="chat-broken-first", max_tokens=16)
        return user, create(user=user, assistant=assistant)

    user, conversation = await sync_to_async(setup)()
    communicator, connected, _ = await socket_connect(f"/ws/chat/{conversation.pk}/", user)
    assert connected
    await communicator.send_to(text_data=json.dumps({"type": "user_message", "text": "Say hello."}))
    frames = []
    while not frames or frames[-1]["type"] not in ("metrics", "error"):
        frames.append(json.loads(await communicator.receive_from(timeout=120)))
    await communicator.disconnect()

    kinds = [f["type"] for f in frames]
    assert "fallback" in kinds and kinds.index("fallback") < kinds.index("delta")
    done = next(f for f in frames if f["type"] == "done")
    assert done["model"] == "smollm2-135m" and done["fallback"] is True
    assert done["model_note"].startswith("Answered by ") and "because broken-chat failed to load" in done["model_note"]
    stored = await sync_to_async(Message.objects.get)(role="assistant")
    assert stored.model_note == done["model_note"]


# ----------------------------------------------------------------------------- cancellation


@pytest.mark.worker
def test_a_v1_client_that_disconnects_stops_the_worker(live_daphne, celery_worker, bundled_models):
    """A non-streamed request whose client hangs up is cancelled in the worker, not run to the end."""
    key, secret = api_key_make()
    host, port = live_daphne["url"].removeprefix("http://").split(":")
    # Counting is long and certain, so the reply cannot end on its own before the client hangs up.
    body = json.dumps({"model": "chat-default", "max_tokens": 400, "temperature": 0, "messages": [
        {"role": "user", "content": "Count from 1 to 1000, one number per line, with nothing else."}]})
    # Claims of earlier tests' requests can outlive them (a killed worker never releases its claim), so
    # only a claim that appears after this request was sent is this request's.
    before = set(redis_client().scan_iter("parley:job:run:chatcmpl-*"))
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v1/chat/completions", body=body,
                       headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    # Wait until the worker has been generating for it for a second, then hang up. A claim that comes and
    # goes at once is a withdrawn job of some earlier request being skipped, not this one.
    first_seen: dict[bytes, float] = {}

    def generating_for_a_second() -> bool:
        now = time.monotonic()
        claims = set(redis_client().scan_iter("parley:job:run:chatcmpl-*")) - before
        for claim in list(first_seen):
            if claim not in claims:
                del first_seen[claim]
        for claim in claims:
            first_seen.setdefault(claim, now)
        return any(now - seen >= 1.0 for seen in first_seen.values())

    wait_for(generating_for_a_second, timeout=60, what="the worker to start the job")
    connection.sock.close()

    wait_for(lambda: UsageRecord.objects.filter(api_key=key, task="chat").exists(), timeout=120,
             what="the worker to stop and record the request")
    record = UsageRecord.objects.get(api_key=key, task="chat")
    assert (record.outcome, record.completion_tokens < 400) == ("canceled", True), (
        record.outcome, record.completion_tokens, record.duration_ms, record.spec_id)


@pytest.mark.worker
def test_a_stream_closed_before_it_is_read_withdraws_its_job_and_settles(celery_worker, bundled_models):
    """A streamed job is sent as soon as it is reserved (its events wait in a Redis list): a response that
    is closed unread (the client left before the body started) must not leave it running or holding quota."""
    from inference.services import Caller, chat_stream
    from inference.streaming import cancel_requested, request_cancel_key

    key, _ = api_key_make()
    before = _quota_used(key.user_id, "tpd")
    stream = chat_stream(caller=Caller(user=key.user, api_key=key, via="api"), model="chat-default",
                         max_tokens=400, temperature=0, messages=[
                             {"role": "user", "content": "Count from 1 to 1000, one number per line."}])
    assert _quota_used(key.user_id, "tpd") > before  # reserved, and the job is on its way

    stream.close()  # what Django does with a response nobody read

    assert cancel_requested(request_cancel_key(stream.request_id))
    assert _quota_used(key.user_id, "tpd") == before
    wait_for(lambda: UsageRecord.objects.filter(request_id=stream.request_id).exists()
             or redis_client().get(f"parley:job:outcome:{stream.request_id}") is not None
             or not redis_client().exists(f"parley:job:run:{stream.request_id}"), timeout=60,
             what="the worker to drop the withdrawn job")
    record = UsageRecord.objects.filter(request_id=stream.request_id).first()
    assert record is None or (record.outcome == "canceled" and record.completion_tokens < 400), record


@pytest.mark.worker
def test_a_killed_daphne_mid_reply_leaves_the_generated_text_in_the_message(child_env, celery_worker,
                                                                             bundled_models, tmp_path):
    """The web process dies while a reply streams; the orphan sweep finishes the message with
    everything the worker generated (the worker's stored outcome), not an empty or stale row."""
    import asyncio

    import websockets
    from django.conf import settings

    from chat.services import messages_finish_orphaned

    user = user_make()
    conversation = conversation_make(user=user)
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    port = services._free_port()
    log = tmp_path / "daphne.log"
    daphne = daphne_start(env=dict(child_env, ALLOWED_HOSTS="127.0.0.1,localhost"), port=port, log=log)
    try:
        wait_for(lambda: services.port_in_use(port), timeout=60, what="Daphne", log=log)

        async def talk() -> int:
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/chat/{conversation.pk}/", origin=f"http://127.0.0.1:{port}",
                additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
            ) as socket:
                await socket.send(json.dumps({"type": "user_message", "text": "Write a long story about a "
                                              "lighthouse keeper, in many paragraphs."}))
                deltas = 0
                while deltas < 3:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
                    if frame["type"] == "start":
                        message_id = frame["message_id"]
                    deltas += frame["type"] == "delta"
                os.kill(daphne.pid, signal.SIGKILL)  # mid-reply
                return message_id

        message_id = asyncio.run(talk())
    finally:
        process_stop(daphne)

    message = Message.objects.get(pk=message_id)
    assert message.status == Message.Status.STREAMING  # nobody finished it: the process is gone
    from chat.turns import LEASE_TTL_SECONDS

    time.sleep(LEASE_TTL_SECONDS + 1)
    assert messages_finish_orphaned(min_age_seconds=0) == 1

    message.refresh_from_db()
    from inference.services import job_outcome

    outcome = job_outcome(request_id=message.request_id)
    assert outcome is not None and outcome["text"]
    assert message.status in (Message.Status.DONE, Message.Status.INTERRUPTED)
    assert message.text == outcome["text"]
    assert message.model_name == outcome["spec"]


# ----------------------------------------------------------------------------- logs


@pytest.mark.worker
def test_prompts_and_replies_stay_out_of_the_worker_log(celery_worker, bundled_models):
    """At INFO the worker logs that a task ran, never what was asked or answered."""
    import uuid

    marker = f"zebracorn{uuid.uuid4().hex[:8]}"
    _, secret = api_key_make()

    response = _api(secret).post("/v1/chat/completions", {
        "model": "chat-fast", "max_tokens": 24,
        "messages": [{"role": "user", "content": f"Repeat this word three times: {marker}"}]},
        content_type="application/json")

    assert response.status_code == 200
    reply = response.json()["choices"][0]["message"]["content"]
    log = Path(celery_worker["log"]).read_text()
    assert marker not in log
    for line in (line for line in reply.splitlines() if len(line.strip()) > 12):
        assert line.strip() not in log


# ----------------------------------------------------------------------------- routing by heartbeat


@pytest.mark.worker
def test_jobs_go_to_the_queue_of_the_worker_that_holds_the_model(celery_worker, bundled_models):
    from config.celery import app
    from inference.gateway import model_queue, queue_for
    from inference.services import route_set

    _, secret = api_key_make()
    ask = {"model": "smollm2-135m", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    assert _api(secret).post("/v1/chat/completions", ask, content_type="application/json").status_code == 200

    # Loaded: the worker says so in its heartbeat and consumes the model's own queue.
    wait_for(lambda: queue_for("smollm2-135m") == model_queue("smollm2-135m"), timeout=30,
             what="the heartbeat to list the loaded model")

    def subscribed() -> bool:
        queues = app.control.inspect(destination=[celery_worker["hostname"]], timeout=2).active_queues() or {}
        return model_queue("smollm2-135m") in {q["name"] for q in queues.get(celery_worker["hostname"], [])}

    wait_for(subscribed, timeout=30, what="the worker to consume the model's queue")
    response = _api(secret).post("/v1/chat/completions", ask, content_type="application/json")
    assert response.status_code == 200 and response.json()["model"] == "smollm2-135m"

    # A model no live worker holds is not loaded lazily when lazy loading is off: the next one serves.
    from inference.services import modelspec_register

    modelspec_register(name="unheld-chat", defaults={
        "task": "chat", "backend": "ctranslate2", "source": "/nonexistent/unheld", "params": {"context_length": 2048},
        "description": "Unheld Chat, nowhere"})
    route_set(alias="chat-unheld-first", task="chat", spec_names=["unheld-chat", "smollm2-135m"])
    with override_settings(PARLEY_LAZY_LOAD=False):
        response = _api(secret).post("/v1/chat/completions", {**ask, "model": "chat-unheld-first"},
                                     content_type="application/json")
    body = response.json()
    assert response.status_code == 200 and body["model"] == "smollm2-135m"
    assert body["parley"]["fallback_reason"] == "Unheld Chat is not loaded on any worker"
    assert not UsageRecord.objects.filter(model_name="unheld-chat").exists()  # never sent to a worker


@pytest.mark.worker
def test_a_model_that_does_not_start_in_time_falls_back_and_its_job_never_runs(celery_worker, bundled_models):
    """A worker that vanished still has a fresh heartbeat saying it holds `ghost-chat` (written
    here as that worker would have): jobs for it sit in its queue unclaimed. After the start
    deadline the gateway withdraws the job and the next model answers; the withdrawn job, if
    a worker ever picks it up, is skipped rather than run a second time."""
    from config.celery import app
    from inference.gateway import model_queue
    from inference.services import modelspec_register, route_set

    modelspec_register(name="ghost-chat", defaults={
        "task": "chat", "backend": "ctranslate2", "source": "/nonexistent/ghost", "params": {"context_length": 2048},
        "description": "Ghost Chat"})
    route_set(alias="chat-ghost-first", task="chat", spec_names=["ghost-chat", "smollm2-135m"])
    heartbeat_store(hostname="ghost@nowhere", ttl=60, payload={
        "hostname": "ghost@nowhere", "queues": ["gpu"], "last_seen": time.time(),
        "models": {"ghost-chat": {"state": "loaded"}}})
    _, secret = api_key_make()
    try:
        with override_settings(PARLEY_START_TIMEOUT=3):
            response = _api(secret).post("/v1/chat/completions", {
                "model": "chat-ghost-first", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]},
                content_type="application/json")
        body = response.json()
        assert response.status_code == 200, body
        assert body["model"] == "smollm2-135m"
        assert body["parley"]["fallback_reason"] == "Ghost Chat did not start in time"

        # Now a worker takes the ghost's queue: the withdrawn job is skipped, never generated.
        app.control.add_consumer(model_queue("ghost-chat"), destination=[celery_worker["hostname"]], reply=True)
        wait_for(lambda: redis_client().llen(model_queue("ghost-chat")) == 0, timeout=30,
                 what="the worker to take the ghost's queue")
        time.sleep(1)
        assert not UsageRecord.objects.filter(model_name="ghost-chat").exists()
    finally:
        redis_client().delete("parley:worker:ghost@nowhere")
        app.control.cancel_consumer(model_queue("ghost-chat"), destination=[celery_worker["hostname"]], reply=True)
