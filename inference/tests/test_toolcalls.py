"""inference.toolcalls: validation, Qwen2.5's tool prompt (checked against the model's own template) and the
parser, on fixed model outputs and split at every position as a stream would split them."""

from __future__ import annotations

import json

import pytest

from inference import install
from inference.toolcalls import (
    MAX_TOOL_CHARS,
    MAX_TOOLS,
    ToolCall,
    ToolCallParser,
    ToolsInvalid,
    messages_with_tools,
    tool_calls_parse,
    tools_system_prompt,
    tools_validate,
)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city"}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the time in a timezone, e.g. «Europe/Zürich».",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}
TOOLS = [WEATHER, TIME]


def _call(name: str, **arguments) -> str:
    return json.dumps({"name": name, "arguments": arguments})


# ----------------------------------------------------------------------------- validation


def _invalid(tools, tool_choice=None, parallel=True) -> ToolsInvalid:
    with pytest.raises(ToolsInvalid) as caught:
        tools_validate(tools, tool_choice, parallel)
    return caught.value


def _renamed(name: str) -> dict:
    return {"type": "function", "function": {**WEATHER["function"], "name": name}}


@pytest.mark.parametrize(("tools", "choice", "param", "words"), [
    ({"type": "function"}, None, "tools", "must be a list"),
    (["get_weather"], None, "tools[0]", "must be an object"),
    ([{"type": "retrieval"}], None, "tools[0].type", "only \"function\""),
    ([{"type": "function", "function": "get_weather"}], None, "tools[0].function", "must be an object"),
    ([WEATHER, {"type": "function", "function": {"description": "x"}}], None, "tools[1].function.name",
     "not a valid function name"),
    ([_renamed("get weather")], None, "tools[0].function.name", "letters, digits, underscores"),
    ([_renamed("x" * 65)], None, "tools[0].function.name", "1 to 64"),
    ([WEATHER, WEATHER], None, "tools[1].function.name", "declared twice"),
    ([_renamed(f"f{i}") for i in range(MAX_TOOLS + 1)], None, "tools", f"at most {MAX_TOOLS}"),
    ([{"type": "function", "function": {"name": "f", "description": 3}}], None, "tools[0].function.description",
     "string"),
    ([{"type": "function", "function": {"name": "f", "parameters": "city"}}], None, "tools[0].function.parameters",
     "JSON Schema object"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}], None,
     "tools[0].function.parameters", "type \"object\""),
    ([{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"city": {"type": "town"}}}}}], None,
     "tools[0].function.parameters.properties.city.type", "not a valid JSON Schema"),
    ([{"type": "function", "function": {"name": "f", "description": "x" * MAX_TOOL_CHARS}}], None, "tools[0]",
     f"limit is {MAX_TOOL_CHARS:,}"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "$schema": [1]}}}], None,
     "tools[0].function.parameters.$schema", "not a valid JSON Schema"),
    (TOOLS, "sometimes", "tool_choice", "\"required\""),
    (TOOLS, {"type": "function", "function": {"name": "get_news"}}, "tool_choice.function.name",
     "`get_news`, which is not in `tools`"),
    (TOOLS, {"type": "function"}, "tool_choice", "must be"),
    (TOOLS, {"name": "get_weather"}, "tool_choice", "must be"),
    ([], "required", "tool_choice", "`tools` is empty"),
    (None, {"type": "function", "function": {"name": "get_weather"}}, "tool_choice.function.name", "not in"),
])
def test_bad_tools_name_the_field(tools, choice, param, words):
    error = _invalid(tools, choice)

    assert error.param == param
    assert words in error.message


def test_parallel_tool_calls_must_be_a_boolean():
    assert _invalid(TOOLS, None, parallel="no").param == "parallel_tool_calls"


def test_tool_choice_defaults_to_auto_with_tools_and_none_without():
    assert tools_validate(TOOLS)[1] == "auto"
    assert tools_validate(None) == ([], "none")
    assert tools_validate(TOOLS, {"type": "function", "function": {"name": "get_time", "x": 1}})[1] == {
        "type": "function", "function": {"name": "get_time"}}


# ----------------------------------------------------------------------------- the prompt


@pytest.fixture(scope="module")
def qwen_tokenizer():
    from transformers import AutoTokenizer

    path = install.MODELS_DIR / "qwen2.5-coder-0.5b"
    if not (path / "tokenizer_config.json").exists():
        pytest.fail(f"{path} is not prepared; run `python manage.py models_install` (make test does).")
    return AutoTokenizer.from_pretrained(path, fix_mistral_regex=False)


CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Paris and the time in Zürich?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_2", "type": "function",
         "function": {"name": "get_time", "arguments": '{"timezone":"Europe/Zürich"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature_c": 21}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
    {"role": "assistant", "content": "21 °C, 14:05. Anything else?"},
    {"role": "user", "content": "And Rome?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_3", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
    {"role": "tool", "tool_call_id": "call_3", "content": '{"temperature_c": 25}'},
]


def _hf(messages: list[dict]) -> list[dict]:
    """The same conversation in transformers' shape: arguments as objects, as its templates expect."""
    out = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [{"type": "function", "function": {
                "name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}}
                for c in message["tool_calls"]]
        out.append(message)
    return out


def test_rendered_messages_give_qwens_own_tool_prompt(qwen_tokenizer):
    plain = messages_with_tools(CONVERSATION, TOOLS, "auto")

    assert {m["role"] for m in plain} == {"system", "user", "assistant"}
    ours = qwen_tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
    theirs = qwen_tokenizer.apply_chat_template(_hf(CONVERSATION), tools=TOOLS, add_generation_prompt=True,
                                                tokenize=False)
    assert ours == theirs
    assert "<tools>\n" + json.dumps(WEATHER, ensure_ascii=False) in ours and "Zürich" in ours


def test_without_a_system_message_the_backends_one_is_used(qwen_tokenizer):
    messages = [{"role": "user", "content": "Weather in Oslo?"}]

    plain = messages_with_tools(messages, [WEATHER], "auto", system="You are Parley.")

    assert plain[0] == {"role": "system", "content": "You are Parley." + tools_system_prompt([WEATHER])}
    ours = qwen_tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
    theirs = qwen_tokenizer.apply_chat_template([{"role": "system", "content": "You are Parley."}, *messages],
                                                tools=[WEATHER], add_generation_prompt=True, tokenize=False)
    assert ours == theirs


def test_tool_choice_none_offers_no_tools_but_keeps_the_history(qwen_tokenizer):
    plain = messages_with_tools(CONVERSATION, TOOLS, "none")

    ours = qwen_tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
    assert ours == qwen_tokenizer.apply_chat_template(_hf(CONVERSATION), add_generation_prompt=True, tokenize=False)
    assert "<tools>" not in ours and "<tool_response>\n14:05\n</tool_response>" in ours


def test_plain_messages_without_tools_are_unchanged():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

    assert messages_with_tools(messages) == messages
    assert messages_with_tools(messages, TOOLS, "none") == messages


def test_required_and_named_choices_ask_for_a_call():
    required = tools_system_prompt(TOOLS, "required")
    named = tools_system_prompt(TOOLS, {"type": "function", "function": {"name": "get_time"}})
    single = tools_system_prompt(TOOLS, "auto", parallel_tool_calls=False)

    assert required.startswith(tools_system_prompt(TOOLS)) and "must call at least one" in required
    # A named choice offers only that function: the model cannot call another.
    assert '"get_time"' in named and '"get_weather"' not in named and "must call the function `get_time`" in named
    assert "at most one function" in single
    assert tools_system_prompt(TOOLS, "none") == tools_system_prompt([], "auto") == ""


# ----------------------------------------------------------------------------- parsing fixed replies


def _parsed(text: str, tools=TOOLS, **kwargs) -> tuple[str, list[tuple[str, dict]]]:
    content, calls = tool_calls_parse(text, tools, **kwargs)
    return content, [(call.name, json.loads(call.arguments)) for call in calls]


def test_a_well_formed_call():
    text = f"<tool_call>\n{_call('get_weather', city='Paris')}\n</tool_call>"

    content, calls = tool_calls_parse(text, TOOLS)

    assert content == ""
    assert calls[0].as_openai() == {"id": calls[0].id, "type": "function",
                                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert calls[0].id.startswith("call_") and len(calls[0].id) == 29


def test_several_calls_get_their_own_ids():
    text = (f"<tool_call>\n{_call('get_weather', city='Paris')}\n</tool_call>\n"
            f"<tool_call>\n{_call('get_time', timezone='Europe/Paris')}\n</tool_call>")

    content, calls = tool_calls_parse(text, TOOLS)

    assert content == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"timezone": "Europe/Paris"})]
    assert calls[0].id != calls[1].id


def test_text_around_calls_is_content_without_the_whitespace_next_to_them():
    text = f"Let me check.\n\n<tool_call>\n{_call('get_weather', city='Oslo')}\n</tool_call>\nOne moment."

    assert _parsed(text) == ("Let me check.\nOne moment.", [("get_weather", {"city": "Oslo"})])


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"\n</tool_call>',  # two braces short
    "<tool_call>\n{'name': 'get_weather', 'arguments': {}}\n</tool_call>",  # Python, not JSON
    '<tool_call>\n{"name": "get_news", "arguments": {}}\n</tool_call>',  # not an offered function
    '<tool_call>\n{"arguments": {"city": "Paris"}}\n</tool_call>',  # no name
    '<tool_call>\n{"name": "get_weather", "arguments": ["Paris"]}\n</tool_call>',  # arguments not an object
    '<tool_call>\n{"name": "get_weather", "arguments": "Paris"}\n</tool_call>',  # a string, not JSON
    "Before <tool_call> and never closed",
    "Half a tag at the end <tool_ca",
])
def test_malformed_calls_are_text_as_written(text):
    assert _parsed(text) == (text, [])


def test_a_malformed_call_beside_a_good_one():
    bad = '<tool_call>\n{"name": "get_news"}\n</tool_call>'
    text = f"{bad}\n<tool_call>\n{_call('get_time', timezone='UTC')}\n</tool_call>"

    assert _parsed(text) == (bad, [("get_time", {"timezone": "UTC"})])


def test_arguments_written_as_a_json_string_are_accepted():
    text = '<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Lima\\"}"}\n</tool_call>'

    assert _parsed(text) == ("", [("get_weather", {"city": "Lima"})])


def test_a_block_left_open_before_the_next_one_still_counts():
    text = (f"<tool_call>\n{_call('get_weather', city='Paris')}\n"
            f"<tool_call>\n{_call('get_weather', city='Rome')}\n</tool_call>")

    assert _parsed(text)[1] == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]


def test_a_reply_cut_after_a_complete_call_keeps_it():
    assert _parsed(f"<tool_call>\n{_call('get_weather', city='Paris')}") == (
        "", [("get_weather", {"city": "Paris"})])


# What Qwen2.5-Coder-0.5B writes (taken from its greedy replies): the call without the tags.
@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    '```json\n{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}\n```',
    '\n[{"name": "get_weather", "arguments": {"city": "Paris"}}]\n',
])
def test_a_reply_that_is_only_a_bare_call_is_a_call(text):
    assert _parsed(text) == ("", [("get_weather", {"city": "Paris"})])


@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "arguments": {"city": "Paris"}',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>',
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}',
])
def test_a_call_short_of_its_last_brace_is_a_call(text):
    # Both bundled engines' Qwen 0.5B end calls like this now and then.
    assert _parsed(text) == ("", [("get_weather", {"city": "Paris"})])


@pytest.mark.parametrize("text", [
    '{"name": "get_weather", "arguments": {"city": "Par',  # cut inside the arguments: no guessing
    '{"name": "get_weather", "arguments": {"city": "Paris", "days": 3',
    '{"name": "get_weather", "arguments": {"city": "Paris"}} {"name": "get_weather", "arguments": {}',
    '{"name": "get_weather"',
    '{"name": "Ada", "age": 36}',  # JSON that is not a call
    '{"name": "get_weather", "arguments": {"city": "Paris"}} is what I would send.',  # a call inside prose
    '```python\nprint({"name": "get_weather"})\n```',
    "[1, 2, 3]",
    "`x`",
    "   ",
])
def test_json_that_is_not_only_calls_is_text(text):
    assert _parsed(text) == (text, [])


def test_max_calls_keeps_later_calls_as_text():
    second = f"<tool_call>\n{_call('get_time', timezone='UTC')}\n</tool_call>"
    text = f"<tool_call>\n{_call('get_weather', city='Paris')}\n</tool_call>\n{second}"

    assert _parsed(text, max_calls=1) == (second, [("get_weather", {"city": "Paris"})])
    bare = f"{_call('get_weather', city='Paris')}\n{_call('get_weather', city='Rome')}"
    assert _parsed(bare, max_calls=1) == (bare, [])
    assert len(_parsed(bare)[1]) == 2


def test_only_the_offered_tools_are_parsed():
    text = f"<tool_call>\n{_call('get_weather', city='Paris')}\n</tool_call>"

    assert _parsed(text, tools=["get_time"]) == (text, [])


# ----------------------------------------------------------------------------- streaming


REPLIES = [
    f"Let me check.\n<tool_call>\n{_call('get_weather', city='Paris')}\n</tool_call>\n"
    f"<tool_call>\n{_call('get_time', timezone='Europe/Zürich')}\n</tool_call>",
    f"<tool_call>\n{_call('get_weather', city='Oslo')}\n</tool_call> and <tool_call>{{bad</tool_call> done < end",
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    '{"name": "get_time", "arguments": {"timezone": "UTC"}}',
    '{"name": "get_time", "arguments": {"timezone": "UTC"}',
    '{"name": "get_weather_x"} <tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
    "Plain text with a <b>tag</b>, a < sign, <tool and `code`.\n",
    "```js\nconst a = 1;\n```",
]


def _streamed(text: str, cuts: list[int]) -> tuple[list[str | ToolCall], list]:
    parser = ToolCallParser(TOOLS)
    parts, pieces, start = [], [], 0
    for cut in [*cuts, len(text)]:
        parts += parser.feed(text[start:cut])
        pieces.append(text[start:cut])
        start = cut
    return parts + parser.finish(), pieces


def _summary(parts: list[str | ToolCall]) -> tuple[str, list[tuple[str, str]]]:
    return ("".join(p for p in parts if isinstance(p, str)),
            [(p.name, p.arguments) for p in parts if isinstance(p, ToolCall)])


@pytest.mark.parametrize("text", REPLIES)
def test_every_split_into_two_chunks_parses_as_the_whole(text):
    whole_content, whole_calls = tool_calls_parse(text, TOOLS)
    expected = (whole_content, [(c.name, c.arguments) for c in whole_calls])

    for cut in range(len(text) + 1):
        parts, _ = _streamed(text, [cut])
        assert _summary(parts) == expected, cut


@pytest.mark.parametrize("text", REPLIES)
def test_one_character_at_a_time_parses_as_the_whole_and_keeps_the_order(text):
    whole_content, whole_calls = tool_calls_parse(text, TOOLS)

    parts, _ = _streamed(text, list(range(1, len(text))))

    assert _summary(parts) == (whole_content, [(c.name, c.arguments) for c in whole_calls])
    if text.startswith("Let me check."):
        first_call = next(i for i, part in enumerate(parts) if isinstance(part, ToolCall))
        assert "".join(parts[:first_call]) == "Let me check."


def test_text_streams_before_a_call_and_a_tag_start_is_held_back():
    parser = ToolCallParser(TOOLS)

    assert parser.feed("Checking the weather ") == ["Checking the weather"]
    assert parser.feed("now <tool_") == [" now"]  # the space waits for what follows; "<tool_" may be a tag
    assert parser.feed('call>\n{"name": "get_weather", ') == []
    call = parser.feed('"arguments": {"city": "Paris"}}\n</tool_call>')
    assert [c.name for c in call] == ["get_weather"]
    assert parser.feed("\n") == [] and parser.finish() == []


def test_a_bare_call_is_held_until_the_end_and_prose_is_not():
    parser = ToolCallParser(TOOLS)
    assert parser.feed('{"name": "get_') == []
    assert parser.feed('weather", "arguments": {}}') == []
    assert [c.name for c in parser.finish()] == ["get_weather"]

    prose = ToolCallParser(TOOLS)
    assert prose.feed("{") == []
    assert prose.feed(' "title"') == ['{ "title"']  # not `"name"`: it cannot be a call
