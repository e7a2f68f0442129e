"""/v1/chat/completions refuses bad `tools`, `tool_choice` and tool messages with a 400 that names the field,
before anything reaches a worker. In-process client; the tool flow itself is in test_openai_client.py."""

from __future__ import annotations

import pytest

from inference.models import UsageRecord
from inference.tests.factories import api_key_make
from inference.toolcalls import MAX_TOOL_CHARS, MAX_TOOLS

pytestmark = pytest.mark.django_db

CHAT = "/v1/chat/completions"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALLED = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}


@pytest.fixture
def key(bundled_models):
    return api_key_make()[1]


def _error(client, key: str, status: int = 400, **body) -> dict:
    body = {"model": "qwen2.5-coder-0.5b", "messages": ASK, **body}
    response = client.post(CHAT, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return error


def _renamed(name: str) -> dict:
    return {"type": "function", "function": {**WEATHER["function"], "name": name}}


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"tools": {"get_weather": WEATHER}}, "tools", "must be a list"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type", "only \"function\""),
    ({"tools": [WEATHER, _renamed("get weather!")]}, "tools[1].function.name", "not a valid function name"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name", "`get_weather` is declared twice"),
    ({"tools": [_renamed(f"tool_{i}") for i in range(MAX_TOOLS + 1)]}, "tools", f"at most {MAX_TOOLS}"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"enum": "x" * MAX_TOOL_CHARS}}}}}]},
     "tools[0].function.parameters.properties.a.enum", "not a valid JSON Schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"description": "x" * MAX_TOOL_CHARS}}}}}]}, "tools[0]",
     f"the limit is {MAX_TOOL_CHARS:,} per tool"),
    ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice", "use \"none\", \"auto\", \"required\""),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_news"}}},
     "tool_choice.function.name", "`get_news`, which is not in `tools`"),
    ({"tool_choice": "required"}, "tool_choice", "`tools` is empty"),
])
def test_bad_tools_are_400_naming_the_field(client, key, body, param, words):
    error = _error(client, key, **body)

    assert error["param"] == param and error["code"] == "invalid_value"
    assert error["message"].startswith(f"Invalid value for `{param}`: ") and words in error["message"]
    assert not UsageRecord.objects.exists()


@pytest.mark.parametrize(("messages", "words"), [
    ([*ASK, CALLED, {"role": "tool", "content": "21 °C"}], "message 2 has role `tool` and needs `tool_call_id`"),
    ([*ASK, CALLED, {"role": "tool", "tool_call_id": "call_xyz", "content": "21 °C"}],
     "answers tool call 'call_xyz', which no earlier assistant message made"),
    ([*ASK, {"role": "tool", "tool_call_id": "call_abc", "content": "21 °C"}], "which no earlier assistant"),
    ([*ASK, {"role": "assistant", "content": None, "tool_calls": {"name": "get_weather"}}],
     "message 1 has `tool_calls` that is not a list"),
    ([*ASK, {"role": "assistant", "tool_calls": [{"id": "call_1", "function": {"name": "get_weather",
                                                                               "arguments": {"city": "Paris"}}}]}],
     "\"arguments\": \"<JSON text>\""),
    ([*ASK, {"role": "assistant", "content": None}], "message 1 needs `content` as a string"),
])
def test_bad_tool_messages_are_400(client, key, messages, words):
    error = _error(client, key, messages=messages, tools=[WEATHER])

    assert error["param"] == "messages" and words in error["message"]


def test_parallel_tool_calls_must_be_a_boolean(client, key):
    assert _error(client, key, tools=[WEATHER], parallel_tool_calls="sometimes")["param"] == "parallel_tool_calls"


def test_tools_count_against_the_context(client, key, bundled_models):
    # SmolLM2's 8,192-token context: 40 tools of ~12,000 characters are far more than that.
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "word " * 2400}}
             for i in range(40)]

    error = _error(client, key, model="smollm2-135m", tools=tools)

    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
