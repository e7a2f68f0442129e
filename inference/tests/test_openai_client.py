"""The official `openai` package, unchanged, against a live Daphne and a real gpu worker."""

from __future__ import annotations

import openai
import pytest

from inference.models import UsageRecord
from inference.tests.factories import api_key_make
from inference.tests.speech import speech_clip

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(live_daphne, celery_worker, bundled_models):
    _, key = api_key_make()
    return openai.OpenAI(base_url=live_daphne["url"] + "/v1", api_key=key, max_retries=0, timeout=120)


def test_models_list(client):
    ids = {model.id for model in client.models.list()}

    assert {"qwen2.5-coder-0.5b", "smollm2-135m", "whisper-tiny.en", "piper-en-us-joe",
            "all-minilm-l6-v2", "chat-default", "embed-default"} <= ids


def test_chat_completion_without_streaming(client):
    response = client.chat.completions.create(
        model="qwen2.5-coder-0.5b", temperature=0, max_tokens=10,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    )

    assert "Paris" in response.choices[0].message.content
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens > 0
    record = UsageRecord.objects.get(request_id=response.id)
    assert record.outcome == "ok" and record.completion_tokens == response.usage.completion_tokens
    assert record.cost > 0 and record.ttft_ms > 0


def test_chat_completion_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="chat-fast", max_tokens=24, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Name three colours."}],
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].model == "smollm2-135m"


def test_embeddings(client):
    response = client.embeddings.create(model="embed-default", input=["reset my password", "password reset"])

    assert [item.index for item in response.data] == [0, 1]
    assert len(response.data[0].embedding) == 384
    assert response.usage.prompt_tokens > 0


def test_transcription_of_espeak_speech(client, tmp_path):
    clip = speech_clip("what is the capital of France", tmp_path)

    with clip.open("rb") as audio:
        text = client.audio.transcriptions.create(model="stt-default", file=audio).text

    assert "capital" in text.lower() and "france" in text.lower()


def test_speech_then_transcription_round_trip(client, tmp_path):
    speech = client.audio.speech.create(model="tts-default", voice="joe", response_format="wav",
                                        input="Please book a meeting room for Tuesday.")
    path = tmp_path / "speech.wav"
    path.write_bytes(speech.content)
    assert speech.content[:4] == b"RIFF"

    with path.open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-base", file=audio, response_format="verbose_json")

    assert "meeting room" in result.text.lower() and "tuesday" in result.text.lower()
    assert result.duration > 1
