"""The official `openai` package, unchanged, against a live Daphne and a real gpu worker."""

from __future__ import annotations

import json

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


# ----------------------------------------------------------------------------- tool calling
# Qwen2.5-Coder-0.5B at temperature 0 answers this question with a call to the one tool offered (in its
# own bare-JSON form; the server turns it into `tool_calls`). Given the tool's result it does not write
# prose: it repeats its call and then the result, which comes back as text (not a call: the second object
# is no call). The final answer is checked for the result's words, which only the tool message carries.
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city name"}},
                   "required": ["city"]}}}
WEATHER_QUESTION = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_RESULT = json.dumps({"city": "Paris", "temperature_c": 23, "conditions": "light drizzle"})


def test_tool_flow_without_streaming(client):
    messages = list(WEATHER_QUESTION)
    first = client.chat.completions.create(model="qwen2.5-coder-0.5b", temperature=0, max_tokens=40,
                                           messages=messages, tools=[WEATHER_TOOL], tool_choice="required")

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert UsageRecord.objects.get(request_id=first.id).outcome == "ok"

    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": WEATHER_RESULT}]
    final = client.chat.completions.create(model="qwen2.5-coder-0.5b", temperature=0, max_tokens=60,
                                           messages=messages, tools=[WEATHER_TOOL])

    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.tool_calls is None
    assert "drizzle" in final.choices[0].message.content
    assert final.usage.prompt_tokens > first.usage.prompt_tokens


def test_tool_flow_streaming(client):
    messages = list(WEATHER_QUESTION)
    chunks = list(client.chat.completions.create(
        model="qwen2.5-coder-0.5b", temperature=0, max_tokens=40, stream=True, messages=messages,
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}))

    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert deltas[0].role == "assistant"
    pieces = [piece for delta in deltas for piece in delta.tool_calls or []]
    # OpenAI's order: the call's id, type and name with empty arguments, then the arguments in fragments.
    assert pieces[0].index == 0 and pieces[0].id.startswith("call_") and pieces[0].type == "function"
    assert pieces[0].function.name == "get_weather" and pieces[0].function.arguments == ""
    assert {piece.index for piece in pieces} == {0} and all(piece.id is None for piece in pieces[1:])
    arguments = "".join(piece.function.arguments for piece in pieces)
    assert json.loads(arguments) == {"city": "Paris"}
    assert not "".join(delta.content or "" for delta in deltas)
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "tool_calls"

    # The client's own stream helper puts the call together, and the conversation goes on with it.
    messages += [{"role": "assistant", "content": None, "tool_calls": [
                     {"id": pieces[0].id, "type": "function",
                      "function": {"name": "get_weather", "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": pieces[0].id, "content": WEATHER_RESULT}]
    with client.chat.completions.stream(model="qwen2.5-coder-0.5b", temperature=0, max_tokens=60,
                                        messages=messages, tools=[WEATHER_TOOL]) as stream:
        final = stream.get_final_completion()

    assert final.choices[0].finish_reason == "stop"
    assert not final.choices[0].message.tool_calls
    assert "drizzle" in final.choices[0].message.content


def test_tool_choice_none_leaves_the_tools_out(client):
    response = client.chat.completions.create(
        model="qwen2.5-coder-0.5b", temperature=0, max_tokens=40, messages=WEATHER_QUESTION,
        tools=[WEATHER_TOOL], tool_choice="none")

    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.choices[0].message.tool_calls is None
    assert "get_weather" not in response.choices[0].message.content
