"""Bad input gets a 4xx in OpenAI's error shape; nothing reaches a worker. In-process client."""

from __future__ import annotations

import io
import json
import math
import struct
import wave

import pytest
from django.test import override_settings

from accounts.services import apikey_revoke
from inference.tests.factories import api_key_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(bundled_models):
    return api_key_make()


def _post(client, path: str, key: str | None, body: dict | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if "data" in extra:
        return client.post(path, extra.pop("data"), **headers, **extra)
    return client.post(path, body or {}, content_type="application/json", **headers)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def _wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(int(16000 * seconds))))
    return buffer.getvalue()


CHAT = "/v1/chat/completions"


def test_missing_key_is_401(client, key):
    error = _error(_post(client, CHAT, None, {"model": "chat-default", "messages": []}), 401)
    assert error["code"] == "invalid_api_key"


def test_forged_key_is_401(client, key):
    error = _error(_post(client, CHAT, "pk-deadbeef.forgedforgedforged", {"model": "chat-default"}), 401)
    assert error["code"] == "invalid_api_key"


def test_revoked_key_is_401(client, key):
    api_key, secret = key
    apikey_revoke(api_key=api_key)

    error = _error(_post(client, CHAT, secret, {"model": "chat-default", "messages": []}), 401)
    assert "revoked" in error["message"]


def test_unknown_model_is_404(client, key):
    body = {"model": "gpt-17", "messages": [{"role": "user", "content": "hi"}]}

    error = _error(_post(client, CHAT, key[1], body), 404)

    assert error["code"] == "model_not_found"
    assert "gpt-17" in error["message"]


def test_model_of_the_wrong_task_is_400(client, key):
    body = {"model": "whisper-tiny.en", "messages": [{"role": "user", "content": "hi"}]}

    error = _error(_post(client, CHAT, key[1], body), 400)

    assert error["code"] == "model_not_supported"


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "chat-default", "messages": []}, "messages"),
    ({"model": "chat-default", "messages": "hello"}, "messages"),
    ({"model": "chat-default", "messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
    ({"model": "chat-default", "messages": [{"role": "user", "content": 42}]}, "messages"),
    ({"model": "chat-default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "lots"}, "max_tokens"),
    ({"model": "chat-default", "messages": [{"role": "user", "content": "hi"}], "temperature": 7}, "temperature"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
])
def test_malformed_chat_bodies_are_400_naming_the_field(client, key, body, param):
    error = _error(_post(client, CHAT, key[1], body), 400)

    assert error["param"].startswith(param)


def test_max_tokens_over_the_context_is_400(client, key):
    body = {"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}

    error = _error(_post(client, CHAT, key[1], body), 400)

    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "max_tokens"


def test_body_that_is_not_json_is_400(client, key):
    response = client.post(CHAT, "{not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key[1]}")

    _error(response, 400)


def test_embedding_input_of_wrong_type_is_400(client, key):
    error = _error(_post(client, "/v1/embeddings", key[1], {"model": "embed-default", "input": [1, 2, 3]}), 400)
    assert error["param"] == "input"


def test_audio_that_is_not_audio_is_400(client, key):
    upload = io.BytesIO(b"%PDF-1.7 definitely not audio " * 20)
    upload.name = "notes.mp3"

    error = _error(_post(client, "/v1/audio/transcriptions", key[1],
                         data={"model": "stt-default", "file": upload}), 400)

    assert error["code"] == "invalid_audio"


@override_settings(PARLEY_MAX_AUDIO_BYTES=10_000)
def test_audio_over_the_size_limit_is_413(client, key):
    upload = io.BytesIO(_wav(1.0))
    upload.name = "long.wav"

    error = _error(_post(client, "/v1/audio/transcriptions", key[1],
                         data={"model": "stt-default", "file": upload}), 413)

    assert error["code"] == "file_too_large"


@override_settings(PARLEY_MAX_AUDIO_SECONDS=2)
def test_audio_over_the_duration_limit_is_400(client, key):
    upload = io.BytesIO(_wav(3.0))
    upload.name = "long.wav"

    error = _error(_post(client, "/v1/audio/transcriptions", key[1],
                         data={"model": "stt-default", "file": upload}), 400)

    assert "longer than the limit of 2 seconds" in error["message"]


@override_settings(PARLEY_MAX_SPEECH_CHARS=50)
def test_speech_text_over_the_limit_is_400(client, key):
    error = _error(_post(client, "/v1/audio/speech", key[1], {"model": "tts-default", "input": "a" * 51}), 400)

    assert error["param"] == "input"
    assert "limit is 50" in error["message"]


def test_key_without_the_inference_scope_is_403(client, bundled_models):
    _, secret = api_key_make(scopes=["usage:read"])

    error = _error(_post(client, CHAT, secret, {"model": "chat-default", "messages": []}), 403)

    assert "scope" in error["message"]


def test_a_body_over_the_json_limit_is_413_in_openai_shape(client, key, settings):
    settings.PARLEY_MAX_V1_JSON_BYTES = 10_000
    messages = [{"role": "user", "content": "tell me more " * 10}] * 200

    error = _error(_post(client, CHAT, key[1], {"model": "chat-default", "messages": messages}), 413)

    assert error["code"] == "request_too_large" and "larger than" in error["message"]


def test_a_body_over_djangos_upload_cap_is_413_in_openai_shape_not_an_html_400(client, key, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    body = json.dumps({"model": "chat-default", "messages": [{"role": "user", "content": "x" * 5000}]})

    response = client.post(CHAT, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key[1]}")

    assert response["Content-Type"].startswith("application/json")
    assert _error(response, 413)["code"] == "request_too_large"
