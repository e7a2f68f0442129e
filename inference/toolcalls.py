"""OpenAI-format tool calling, in Qwen2.5's tool-call template, for every backend.

Tools are rendered into plain chat messages before a request reaches a worker, so each backend
(CTranslate2, llama-server, transformers, an upstream server) sees ordinary system/user/assistant turns
and its own chat template does the rest. The text is the one Qwen2.5's own template makes with `tools=`:
the tools listed in the system message inside <tools></tools>, earlier calls as <tool_call> blocks in
the assistant's turn, tool results as <tool_response> blocks in a user turn. Rendering here rather than
in each backend keeps one copy of the template, and lets the web side count the tool definitions in the
prompt's token estimate and context check.

The reply is parsed back with `ToolCallParser` (streams) or `tool_calls_parse` (whole texts; the same
parser fed once, so both agree). A call is either a <tool_call>{"name": …, "arguments": {…}}</tool_call>
block anywhere in the reply, or a reply that is nothing but such JSON objects (bare, or in one ```json
fence): Qwen2.5-Coder-0.5B, the bundled model, answers in that bare form and never writes the tags. A
block that is not valid JSON, names no offered function, or has arguments that are not an object stays
in the reply as text: the caller sees what the model wrote, never an error.

Public names: `ToolCall`, `ToolsInvalid`, `tools_validate`, `tools_offered`, `tools_system_prompt`,
`messages_with_tools`, `tool_calls_parse`, `ToolCallParser`, `tool_call_id_new`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_TOOLS", "MAX_TOOL_CHARS", "ToolCall", "ToolCallParser", "ToolsInvalid", "messages_with_tools",
    "tool_call_id_new", "tool_calls_parse", "tools_offered", "tools_system_prompt", "tools_validate",
]

# OpenAI's own limits on the number of tools and on a function's name.
MAX_TOOLS = 128
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# One tool's JSON (name, description and schema): every tool is in every prompt of the request, and a
# few of this size already take thousands of tokens of a small model's context.
MAX_TOOL_CHARS = 16_000
DEFAULT_SYSTEM = "You are a helpful assistant."

OPEN, CLOSE = "<tool_call>", "</tool_call>"
# Qwen2.5's template, word for word: what the models were trained on.
_TOOLS_HEAD = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
               "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
_TOOLS_TAIL = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments "
               "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
               "\"arguments\": <args-json-object>}\n</tool_call>")
_ID_ALPHABET = string.ascii_letters + string.digits


class ToolsInvalid(ValueError):
    """`tools` or `tool_choice` is not acceptable; `param` names the field (`tools[2].function.name`)."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class ToolCall:
    """One function call the model made; `arguments` is a JSON object as text, as OpenAI returns it."""

    id: str
    name: str
    arguments: str

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def tool_call_id_new() -> str:
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ----------------------------------------------------------------------------- validation


def tools_validate(tools: Any, tool_choice: Any = None, parallel_tool_calls: Any = True
                   ) -> tuple[list[dict], str | dict]:
    """(tools, tool_choice) checked as OpenAI checks them; raises ToolsInvalid naming the bad field.
    tool_choice defaults to "auto" with tools and "none" without; the tools come back as given."""
    if not isinstance(parallel_tool_calls, bool):
        raise ToolsInvalid("must be true or false.", param="parallel_tool_calls")
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise ToolsInvalid("must be a list of tools, each {\"type\": \"function\", \"function\": {...}}.",
                           param="tools")
    if len(tools) > MAX_TOOLS:
        raise ToolsInvalid(f"has {len(tools)} tools; at most {MAX_TOOLS} are allowed.", param="tools")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise ToolsInvalid("must be an object {\"type\": \"function\", \"function\": {...}}.", param=where)
        if tool.get("type") != "function":
            raise ToolsInvalid(f"is {tool.get('type')!r}; only \"function\" tools are supported.",
                               param=f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise ToolsInvalid("must be an object with `name` and optional `description` and `parameters`.",
                               param=f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ToolsInvalid(f"{name!r} is not a valid function name: use 1 to 64 letters, digits, underscores "
                               "or dashes.", param=f"{where}.function.name")
        if name in names:
            raise ToolsInvalid(f"`{name}` is declared twice; function names must be unique.",
                               param=f"{where}.function.name")
        names.add(name)
        if "description" in function and not isinstance(function["description"], str):
            raise ToolsInvalid("must be a string.", param=f"{where}.function.description")
        if "strict" in function and not isinstance(function["strict"], (bool, type(None))):
            raise ToolsInvalid("must be true or false.", param=f"{where}.function.strict")
        if "parameters" in function:
            _schema_check(function["parameters"], param=f"{where}.function.parameters")
        size = len(json.dumps(tool, ensure_ascii=False))
        if size > MAX_TOOL_CHARS:
            raise ToolsInvalid(f"`{name}` takes {size:,} characters as JSON; the limit is {MAX_TOOL_CHARS:,} per "
                               "tool. Shorten its description or schema.", param=where)
    return tools, _choice_check(tool_choice, names)


def _schema_check(schema: Any, *, param: str) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise ToolsInvalid("must be a JSON Schema object, such as {\"type\": \"object\", \"properties\": {...}}.",
                           param=param)
    if schema.get("type", "object") != "object":
        raise ToolsInvalid(f"must be a schema of type \"object\" (the arguments are a JSON object), not "
                           f"{schema.get('type')!r}.", param=param)
    try:
        # One fixed draft (OpenAI's), not the one `$schema` names: that would let the client pick the
        # metaschema, and a `$schema` that is not a string breaks jsonschema's lookup.
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        detail = exc.message if len(exc.message) <= 200 else exc.message[:200] + "…"  # it quotes the bad value
        raise ToolsInvalid(f"is not a valid JSON Schema: {detail}.", param=param + path) from None


def _choice_check(choice: Any, names: set[str]) -> str | dict:
    if choice is None:
        return "auto" if names else "none"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise ToolsInvalid(f"is {choice!r}; use \"none\", \"auto\", \"required\" or "
                               "{\"type\": \"function\", \"function\": {\"name\": ...}}.", param="tool_choice")
        if choice == "required" and not names:
            raise ToolsInvalid("is \"required\", but `tools` is empty: give the functions the model may call.",
                               param="tool_choice")
        return choice
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(function, dict) \
            or not isinstance(function.get("name"), str):
        raise ToolsInvalid("must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": "
                           "{\"name\": ...}}.", param="tool_choice")
    if function["name"] not in names:
        raise ToolsInvalid(f"names the function `{function['name']}`, which is not in `tools`.",
                           param="tool_choice.function.name")
    return {"type": "function", "function": {"name": function["name"]}}


# ----------------------------------------------------------------------------- the prompt


def tools_offered(tools: list[dict] | None, tool_choice: str | dict | None = "auto") -> list[dict]:
    """The tools the model is shown and may call: none for "none", the named one for a named choice."""
    if not tools or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        return [tool for tool in tools if tool["function"]["name"] == name]
    return list(tools)


def tools_system_prompt(tools: list[dict] | None, tool_choice: str | dict | None = "auto",
                        parallel_tool_calls: bool = True) -> str:
    """The text Qwen2.5's template appends to the system message for these tools ("" when none are
    offered), plus a sentence that asks for a call when `tool_choice` requires one. It is only asked:
    a model that still answers in text is answered with that text (nothing forces the decoding)."""
    offered = tools_offered(tools, tool_choice)
    if not offered:
        return ""
    text = _TOOLS_HEAD + "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in offered) + _TOOLS_TAIL
    if isinstance(tool_choice, dict):
        text += f"\n\nYou must call the function `{tool_choice['function']['name']}` in this reply."
    elif tool_choice == "required":
        text += "\n\nYou must call at least one of these functions in this reply."
    if not parallel_tool_calls:
        text += "\n\nCall at most one function per reply."
    return text


def messages_with_tools(messages: list[dict], tools: list[dict] | None = None,
                        tool_choice: str | dict | None = "auto", *, system: str = DEFAULT_SYSTEM,
                        parallel_tool_calls: bool = True) -> list[dict[str, str]]:
    """OpenAI messages (tool results, assistant turns with `tool_calls`) and tools as plain
    {"role", "content"} messages whose chat template gives Qwen2.5's tool-call prompt. `system` is used
    when tools are offered and the messages have no system message. Plain messages without tools come
    back unchanged."""
    block = tools_system_prompt(tools, tool_choice, parallel_tool_calls)
    out: list[dict[str, str]] = []
    results: list[str] = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            results.append(f"<tool_response>\n{message.get('content') or ''}\n</tool_response>")
            continue
        if results:  # consecutive tool results share one user turn, as in Qwen's template
            out.append({"role": "user", "content": "\n".join(results)})
            results = []
        if role == "assistant" and message.get("tool_calls"):
            calls = "".join(_call_rendered(call) for call in message["tool_calls"])
            content = message.get("content") or ""
            out.append({"role": "assistant", "content": content + calls if content else calls[1:]})
        else:
            out.append({"role": role, "content": message.get("content") or ""})
    if results:
        out.append({"role": "user", "content": "\n".join(results)})
    if block:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + block}
        else:
            out.insert(0, {"role": "system", "content": system + block})
    return out


def _call_rendered(call: dict) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:  # rendered as Qwen's template renders an arguments object (json.dumps)
            arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
        except ValueError:
            pass  # what the client sent, as it is
    else:
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    return f'\n{OPEN}\n{{"name": "{function.get("name", "")}", "arguments": {arguments}}}\n{CLOSE}'


# ----------------------------------------------------------------------------- parsing


def _names(tools: Iterable[dict | str]) -> frozenset[str]:
    return frozenset(tool if isinstance(tool, str) else tool["function"]["name"] for tool in tools)


def _call_from(value: Any, names: frozenset[str]) -> ToolCall | None:
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(id=tool_call_id_new(), name=value["name"], arguments=json.dumps(arguments, ensure_ascii=False))


_FENCE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)\s*(?:```)?", re.DOTALL | re.IGNORECASE)
_DECODER = json.JSONDecoder()


def _json_call(body: str, names: frozenset[str]) -> ToolCall | None:
    """The call in one JSON object's text. The small Qwen models often end a call without its last brace
    (`{"name": …, "arguments": {…}`): that one brace is added, and only when the arguments are whole."""
    body = body.strip()
    try:
        return _call_from(json.loads(body), names)
    except ValueError:
        pass
    try:
        value = json.loads(body + "}")
    except ValueError:
        return None
    return _call_from(value, names) if isinstance(value, dict) and isinstance(value.get("arguments"), dict) else None


def _bare_calls(text: str, names: frozenset[str]) -> list[ToolCall] | None:
    """The calls of a reply that is nothing but call objects (bare, in a list, or in one ```json fence)."""
    body = text.strip()
    fenced = _FENCE.fullmatch(body) if body.startswith("```") else None
    if fenced:
        body = fenced.group(1)
    values, index = [], 0
    try:
        while index < len(body):
            value, index = _DECODER.raw_decode(body, index)
            values.extend(value if isinstance(value, list) else [value])
            while index < len(body) and body[index] in " \t\r\n,":
                index += 1
    except ValueError:
        if values:
            return None
        call = _json_call(body, names)  # one call short of its last brace
        return [call] if call else None
    calls = [_call_from(value, names) for value in values]
    return calls if calls and all(calls) else None


def _could_be_bare(text: str, names: frozenset[str]) -> bool:
    """False once the reply so far cannot be the start of a bare call (`{"name": "<offered name>"`, maybe
    in a list or a ```json fence). A prefix test: once False, no longer text makes it True again."""
    s = text.lstrip()
    if not s:
        return True
    if s.startswith("`"):
        if not "```".startswith(s[:3]):
            return False
        if len(s) < 3:
            return True
        end = s.find("\n", 3)
        language = (s[3:] if end < 0 else s[3:end]).strip().lower()
        if not "json".startswith(language):
            return False
        if end < 0:
            return True
        if language not in ("", "json"):
            return False
        s = s[end + 1 :].lstrip()
    if s.startswith("["):
        s = s[1:].lstrip()
    if not s:
        return True
    if s[0] != "{":
        return False
    s = s[1:].lstrip()
    key = '"name"'
    if not s.startswith(key):
        return key.startswith(s)
    s = s[len(key) :].lstrip()
    if not s:
        return True
    if s[0] != ":":
        return False
    s = s[1:].lstrip()
    if not s:
        return True
    if s[0] != '"':
        return False
    name, quote, _ = s[1:].partition('"')
    return name in names if quote else any(n.startswith(name) for n in names)


def _tag_start_held(text: str) -> int:
    """How many characters at the end of `text` could be the start of <tool_call> (held back)."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


class ToolCallParser:
    """Splits a reply, as it streams, into text and ToolCalls; `feed` and `finish` return them in order.

    Text that could still become a call is held back until it can be decided: the end of a chunk that
    may be the start of <tool_call>, a whole <tool_call> block until it closes (only a complete block can
    be checked), and a reply that so far looks like a bare call object. Whitespace between text and a call
    is dropped; a reply without calls comes out exactly as written. `max_calls` (1 for
    parallel_tool_calls=false) keeps later calls as text.
    """

    def __init__(self, tools: Iterable[dict | str], *, max_calls: int | None = None) -> None:
        self.names = _names(tools)
        self.max_calls = max_calls
        self.calls: list[ToolCall] = []
        self._start: str | None = ""  # the reply while it may be one bare call; None once it can't
        self._buffer = ""
        self._inside = False
        self._space = ""  # trailing whitespace held until it is known what follows it
        self._wrote = False  # any text given out yet
        self._out: list[str | ToolCall] = []

    def feed(self, text: str) -> list[str | ToolCall]:
        if self._start is not None:
            self._start += text
            if _could_be_bare(self._start, self.names):
                return []
            text, self._start = self._start, None
        self._buffer += text
        self._scan()
        return self._take()

    def finish(self) -> list[str | ToolCall]:
        """The rest, at the end of the reply: a held bare call or block is decided now."""
        if self._start is not None:
            text, self._start = self._start, None
            calls = _bare_calls(text, self.names)
            if calls and (self.max_calls is None or len(calls) <= self.max_calls):
                self.calls += calls
                return list(calls)
            self._buffer += text
            self._scan()
        if self._inside:
            self._block(self._buffer, closed=False)
        else:
            self._text(self._buffer)
        self._buffer, self._inside = "", False
        if not self.calls:
            self._emit(self._space)
        self._space = ""
        return self._take()

    def _scan(self) -> None:
        while True:
            if not self._inside:
                start = self._buffer.find(OPEN)
                if start < 0:
                    held = _tag_start_held(self._buffer)
                    self._text(self._buffer[: len(self._buffer) - held])
                    self._buffer = self._buffer[len(self._buffer) - held :]
                    return
                self._text(self._buffer[:start])
                self._buffer, self._inside = self._buffer[start + len(OPEN) :], True
                continue
            end, again = self._buffer.find(CLOSE), self._buffer.find(OPEN)
            if again >= 0 and (end < 0 or again < end):
                # A block left open and a new one begun: the first ends where the second starts.
                self._block(self._buffer[:again], closed=False)
                self._buffer, self._inside = self._buffer[again:], False
                continue
            if end < 0:
                return
            self._block(self._buffer[:end], closed=True)
            self._buffer, self._inside = self._buffer[end + len(CLOSE) :], False

    def _block(self, body: str, *, closed: bool) -> None:
        call = None
        if self.max_calls is None or len(self.calls) < self.max_calls:
            call = _json_call(body, self.names)
        if call is None:  # what the model wrote, as text
            self._text(OPEN + body + (CLOSE if closed else ""))
            return
        self._space = ""
        self.calls.append(call)
        self._out.append(call)

    def _text(self, text: str) -> None:
        if not text:
            return
        text = self._space + text
        if self.calls and not self._wrote:  # the content starts after a call: not with its line break
            text = text.lstrip()
        kept = text.rstrip()
        self._space = text[len(kept) :]
        self._emit(kept)

    def _emit(self, text: str) -> None:
        if not text:
            return
        self._wrote = True
        if self._out and isinstance(self._out[-1], str):
            self._out[-1] += text
        else:
            self._out.append(text)

    def _take(self) -> list[str | ToolCall]:
        out, self._out = self._out, []
        return out


def tool_calls_parse(text: str, tools: Iterable[dict | str], *, max_calls: int | None = None
                     ) -> tuple[str, list[ToolCall]]:
    """(the reply's text without its calls, the calls) for a whole reply; see ToolCallParser."""
    parser = ToolCallParser(tools, max_calls=max_calls)
    parts = parser.feed(text) + parser.finish()
    return "".join(part for part in parts if isinstance(part, str)), parser.calls
