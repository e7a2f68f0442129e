"""The OpenAI-compatible API under /v1. One view per operation; errors in OpenAI's JSON shape."""

from __future__ import annotations

import base64
import json
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from common.errors import ApplicationError
from inference.audio import CONTENT_TYPES, AudioError, audio_decode, audio_encode
from inference.selectors import models_usable, route_resolve, routes_usable
from inference.serving import (
    Caller,
    GatewayError,
    QuotaExceeded,
    chat_complete,
    chat_stream,
    embed,
    synthesize,
    transcribe,
)

# ----------------------------------------------------------------------------- errors

_STATUS_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 402: "insufficient_quota",
                 403: "invalid_request_error", 404: "invalid_request_error", 413: "invalid_request_error",
                 429: "rate_limit_error"}


def openai_error(message: str, *, status: int, code: str | None = None, param: str | None = None,
                 headers: dict | None = None, extra: dict | None = None) -> Response:
    """OpenAI's error shape; `extra` adds Parley's own fields (a plan limit's numbers), which clients ignore."""
    body = {"error": {"message": message, "type": _STATUS_TYPES.get(status, "server_error"), "param": param,
                      "code": code, **{k: v for k, v in (extra or {}).items() if k not in ("param", "retry_after")}}}
    return Response(body, status=status, headers=headers)


def _first_field_error(detail, prefix: str = "") -> tuple[str, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return _first_field_error(value, f"{prefix}.{key}" if prefix else str(key))
    if isinstance(detail, list) and detail:
        if isinstance(detail[0], (dict, list)):
            for index, value in enumerate(detail):
                if value:
                    return _first_field_error(value, f"{prefix}[{index}]")
        return prefix, str(detail[0])
    return prefix, str(detail)


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"


def _too_large_message(limit: int) -> str:
    return (f"The request body is larger than {limit / 2**20:,.0f} MiB, the limit here. Send fewer or shorter "
            "messages (or inputs).")


class LimitedJSONParser(JSONParser):
    """A body too large for any model is refused before it is parsed (and before quotas, whose
    answer would be a 429 "try again in a day" for a request that can never succeed)."""

    def parse(self, stream, media_type=None, parser_context=None):
        meta = parser_context["request"].META
        length = meta.get("CONTENT_LENGTH") or "0"
        limit = settings.PARLEY_MAX_V1_JSON_BYTES
        if length.isascii() and length.isdigit() and int(length) > limit:
            raise RequestTooLarge(_too_large_message(limit))
        return super().parse(stream, media_type=media_type, parser_context=parser_context)


def openai_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RequestDataTooBig):  # Django's own cap, hit while reading the body
        return openai_error(_too_large_message(settings.DATA_UPLOAD_MAX_MEMORY_SIZE), status=413,
                            code="request_too_large")
    if isinstance(exc, QuotaExceeded):
        return openai_error(exc.message, status=429, code=exc.code, headers={"Retry-After": str(exc.retry_after)},
                            extra=exc.extra)
    if isinstance(exc, (ApplicationError, GatewayError)):
        return openai_error(exc.message, status=exc.status, code=exc.code, param=exc.extra.get("param"),
                            extra=exc.extra)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message = str(exc.detail)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "You didn't provide an API key. Send `Authorization: Bearer <key>`."
        return openai_error(message, status=401, code="invalid_api_key",
                            headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_field_error(exc.detail)
        return openai_error(f"Invalid value for `{param}`: {message}" if param else message, status=400,
                            code="invalid_value", param=param or None)
    if isinstance(exc, exceptions.APIException):
        return openai_error(str(exc.detail), status=exc.status_code, code=exc.default_code)
    return None


class OpenAIView(APIView):
    scope = "inference"
    permission_classes = [HasScope]
    parser_classes = [LimitedJSONParser]

    def get_exception_handler(self):
        return openai_exception_handler

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # Clients send Accept headers like application/octet-stream for audio; answer anyway.
        return super().perform_content_negotiation(request, force=True)

    def permission_denied(self, request: Request, message: str | None = None, code: str | None = None) -> None:
        if not (request.user and request.user.is_authenticated):
            raise exceptions.NotAuthenticated()
        raise exceptions.PermissionDenied(message or HasScope.message)

    def api_key(self, request: Request):
        return request.auth if hasattr(request.auth, "scopes") else None

    def caller(self, request: Request) -> Caller:
        return Caller(user=request.user, api_key=self.api_key(request), via="api")


# ----------------------------------------------------------------------------- models


class ModelListApi(OpenAIView):
    @extend_schema(operation_id="v1_models_list", summary="Models and route aliases you can use",
                   responses=inline_serializer("ModelList", {"object": serializers.CharField(),
                                                             "data": serializers.ListField()}))
    def get(self, request: Request) -> Response:
        # Only what the caller may use: their plan's, their teams', and staff's models and routes.
        caller = self.caller(request)
        data = [
            {"id": spec.name, "object": "model", "created": int(spec.created_at.timestamp()), "owned_by": "parley",
             "task": spec.task, "description": spec.description}
            for spec in models_usable(caller=caller)
        ]
        data += [
            {"id": route.alias, "object": "model", "created": int(route.created_at.timestamp()),
             "owned_by": "parley", "task": route.task, "description": route.description,
             "fallback": [entry.spec.name for entry in route.entries.all()]}
            for route in routes_usable(caller=caller)
        ]
        return Response({"object": "list", "data": data})


# ----------------------------------------------------------------------------- chat


class _MessagesField(serializers.ListField):
    ROLES = ("system", "user", "assistant", "developer", "tool")

    def to_internal_value(self, data):
        if not isinstance(data, list) or not data:
            raise serializers.ValidationError("must be a non-empty list of messages.")
        messages = []
        call_ids: set[str] = set()  # of the assistant's earlier tool calls, which tool messages answer
        for index, message in enumerate(data):
            if not isinstance(message, dict):
                raise serializers.ValidationError(f"message {index} must be an object with role and content.")
            role, content = message.get("role"), message.get("content")
            if role not in self.ROLES:
                raise serializers.ValidationError(f"message {index} has role {role!r}; use one of {self.ROLES}.")
            if isinstance(content, list):  # content parts: keep the text ones
                texts = [part.get("text", "") for part in content if isinstance(part, dict)
                         and part.get("type") == "text" and isinstance(part.get("text"), str)]
                content = "\n".join(texts)
            tool_calls = message.get("tool_calls") if role == "assistant" else None
            if tool_calls is not None:
                tool_calls = _tool_calls_checked(tool_calls, index)
                call_ids.update(call["id"] for call in tool_calls)
                content = content or ""  # OpenAI sends `content: null` beside tool calls
            if not isinstance(content, str):
                raise serializers.ValidationError(f"message {index} needs `content` as a string.")
            out = {"role": "system" if role == "developer" else role, "content": content}
            if tool_calls:
                out["tool_calls"] = tool_calls
            if role == "tool":
                call_id = message.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    raise serializers.ValidationError(f"message {index} has role `tool` and needs `tool_call_id`, "
                                                      "the id of the tool call it answers.")
                if call_id not in call_ids:
                    raise serializers.ValidationError(
                        f"message {index} answers tool call {call_id!r}, which no earlier assistant message made: "
                        "a `tool` message must follow the assistant message with that id in its `tool_calls`.")
                out["tool_call_id"] = call_id
            messages.append(out)
        if not any(m["role"] == "user" for m in messages):
            raise serializers.ValidationError("needs at least one message with role `user`.")
        return messages


def _tool_calls_checked(tool_calls, index: int) -> list[dict]:
    """An assistant message's `tool_calls`, as OpenAI returned them: [{id, type, function: {name, arguments}}]."""
    shape = ('a list of {"id": ..., "type": "function", "function": {"name": ..., "arguments": "<JSON text>"}}')
    if not isinstance(tool_calls, list):
        raise serializers.ValidationError(f"message {index} has `tool_calls` that is not {shape}.")
    checked = []
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if (not isinstance(function, dict) or not isinstance(call.get("id"), str)
                or call.get("type", "function") != "function" or not isinstance(function.get("name"), str)
                or not isinstance(function.get("arguments", ""), str)):
            raise serializers.ValidationError(f"message {index} has `tool_calls` that is not {shape}.")
        checked.append({"id": call["id"], "type": "function",
                        "function": {"name": function["name"], "arguments": function.get("arguments", "")}})
    return checked


class ChatCompletionApi(OpenAIView):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "ChatCompletionInput"

        model = serializers.CharField(max_length=100)
        messages = _MessagesField(child=serializers.DictField())
        max_tokens = serializers.IntegerField(min_value=1, required=False)
        max_completion_tokens = serializers.IntegerField(min_value=1, required=False)
        temperature = serializers.FloatField(min_value=0, max_value=2, default=0.7)
        top_p = serializers.FloatField(min_value=0.01, max_value=1, default=1.0)
        n = serializers.IntegerField(min_value=1, max_value=1, default=1)
        stream = serializers.BooleanField(default=False)
        stream_options = serializers.DictField(required=False)
        stop = serializers.JSONField(required=False, allow_null=True)
        user = serializers.CharField(required=False, allow_blank=True)
        # Checked in inference.toolcalls (by chat_complete and chat_stream), which names the bad field.
        tools = serializers.JSONField(required=False, allow_null=True)
        tool_choice = serializers.JSONField(required=False, allow_null=True)
        parallel_tool_calls = serializers.BooleanField(default=True)

        def validate_stop(self, value):
            if value is None:  # OpenAI accepts `stop: null`
                return []
            stops = [value] if isinstance(value, str) else value
            if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > 4:
                raise serializers.ValidationError("must be a string or a list of up to 4 strings.")
            return stops

    @extend_schema(operation_id="v1_chat_completions_create", summary="Chat completion (OpenAI-compatible)",
                   request=Input, responses={200: inline_serializer("ChatCompletion", {"id": serializers.CharField()})})
    def post(self, request: Request) -> Response | StreamingHttpResponse:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        request_args = {
            "caller": self.caller(request), "model": data["model"], "messages": data["messages"],
            "max_tokens": data.get("max_completion_tokens") or data.get("max_tokens"),
            "temperature": data["temperature"], "top_p": data["top_p"], "stop": data.get("stop") or [],
            "tools": data.get("tools"), "tool_choice": data.get("tool_choice"),
            "parallel_tool_calls": data["parallel_tool_calls"],
        }
        if data["stream"]:
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            stream = chat_stream(**request_args)
            response = StreamingHttpResponse(_SseBody(stream, include_usage=include_usage),
                                             content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            response["X-Request-Id"] = stream.request_id
            return response
        result = chat_complete(**request_args)
        message = {"role": "assistant", "content": result["text"]}
        if result["tool_calls"]:
            message = {"role": "assistant", "content": result["text"] or None, "tool_calls": result["tool_calls"]}
        return Response({
            "id": result["request_id"], "object": "chat.completion", "created": int(time.time()),
            "model": result["spec"],
            "choices": [{"index": 0, "message": message,
                         "logprobs": None, "finish_reason": _finish(result["finish_reason"])}],
            "usage": _usage(result["usage"]), "system_fingerprint": None,
            "parley": _answered(result),
        }, headers={"X-Request-Id": result["request_id"], "X-Parley-Model": result["spec"]})


def _answered(result: dict) -> dict:
    """Parley's note on who answered, beside OpenAI's fields (clients ignore unknown keys)."""
    return {"model_label": result.get("model_label", ""), "fallback": result.get("fallback", False),
            "fallback_reason": result.get("fallback_reason", "")}


def _usage(usage: dict) -> dict:
    return {key: usage.get(key, 0) for key in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _finish(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def _chunk(stream, created: int, model: str, delta: dict, finish: str | None, usage: bool) -> str:
    body = {"id": stream.request_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        body["usage"] = None
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


class _SseBody:
    """The SSE body of a streamed completion. Django calls `close()` when the response ends, read or not:
    a client gone before the body started must not leave its job (already sent) running for nobody."""

    def __init__(self, stream, *, include_usage: bool) -> None:
        self.stream, self.include_usage = stream, include_usage

    def __aiter__(self):
        return _sse(self.stream, include_usage=self.include_usage)

    def close(self) -> None:
        self.stream.close()


async def _sse(stream, *, include_usage: bool):
    """OpenAI's chunk stream: role, content deltas, a finish chunk, usage if asked, then [DONE].

    A tool call goes out as OpenAI sends one: a delta with its index, id, type and name (and empty
    arguments), then the arguments as a fragment of its own. The call is whole by then (only a complete
    call is known to be one; see inference.toolcalls), so the arguments come in one fragment.

    While the request waits for a free slot, SSE comment lines (`: queued 2`) keep the connection
    alive and say where it stands; OpenAI clients ignore comments. A fallback is announced the
    same way (`: fallback …`), and the chunks' `model` names the model that answered.
    """
    created, started = int(time.time()), False
    async for event in stream:
        kind = event["event"]
        if kind == "queued":
            yield f": queued {event['position']}\n\n"
        elif kind == "fallback":
            yield f": fallback to {event['spec']} because {_one_line(event['fallback_reason'])}\n\n"
        elif kind == "delta":
            chunk = _chunk(stream, created, event["spec"], {"content": event["text"]}, None, include_usage)
            if not started:
                # The role chunk and the first text leave in one write: two small writes in a row wait for
                # the client's ACK of the first (Nagle's algorithm), a few milliseconds on the first token.
                started = True
                chunk = _chunk(stream, created, event["spec"], {"role": "assistant", "content": ""}, None,
                               include_usage) + chunk
            yield chunk
        elif kind == "tool_call":
            head = {"index": event["index"], "id": event["id"], "type": "function",
                    "function": {"name": event["name"], "arguments": ""}}
            chunk = _chunk(stream, created, event["spec"], {"tool_calls": [head]}, None, include_usage)
            chunk += _chunk(stream, created, event["spec"], {"tool_calls": [
                {"index": event["index"], "function": {"arguments": event["arguments"]}}]}, None, include_usage)
            if not started:
                started = True
                chunk = _chunk(stream, created, event["spec"], {"role": "assistant", "content": None}, None,
                               include_usage) + chunk
            yield chunk
        elif kind == "done":
            if not started:
                yield _chunk(stream, created, event["spec"], {"role": "assistant", "content": ""}, None, include_usage)
            yield _chunk(stream, created, event["spec"], {}, _finish(event["finish_reason"]), include_usage)
            if include_usage:
                body = {"id": stream.request_id, "object": "chat.completion.chunk", "created": created,
                        "model": event["spec"], "system_fingerprint": None, "choices": [],
                        "usage": _usage(event["usage"])}
                yield f"data: {json.dumps(body, separators=(',', ':'))}\n\n"
        else:
            error = {"message": event["message"], "type": "server_error", "param": None, "code": event["code"]}
            yield f"data: {json.dumps({'error': error})}\n\n"
    yield "data: [DONE]\n\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ----------------------------------------------------------------------------- embeddings


class EmbeddingApi(OpenAIView):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "EmbeddingInput"

        model = serializers.CharField(max_length=100)
        input = serializers.JSONField()
        encoding_format = serializers.ChoiceField(choices=["float", "base64"], default="float")
        dimensions = serializers.IntegerField(required=False, min_value=1)
        user = serializers.CharField(required=False, allow_blank=True)

        def validate_input(self, value):
            texts = [value] if isinstance(value, str) else value
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise serializers.ValidationError("must be a string or a non-empty list of strings "
                                                  "(token arrays are not supported).")
            if any(not t.strip() for t in texts):
                raise serializers.ValidationError("must not contain empty strings.")
            if len(texts) > settings.PARLEY_MAX_EMBED_INPUTS:
                raise serializers.ValidationError(f"takes at most {settings.PARLEY_MAX_EMBED_INPUTS} strings.")
            return texts

    @extend_schema(operation_id="v1_embeddings_create", summary="Embeddings (OpenAI-compatible)", request=Input,
                   responses={200: inline_serializer("EmbeddingList", {"object": serializers.CharField()})})
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        _, specs = route_resolve(model=data["model"], task="embed")
        dims = int(specs[0].params.get("dimensions", 0)) or None
        if data.get("dimensions") and dims and data["dimensions"] != dims:
            raise ApplicationError(f"{data['model']} makes {dims}-dimensional vectors; `dimensions` must be {dims}.",
                                   code="invalid_value", extra={"param": "dimensions"})
        result = embed(caller=self.caller(request), texts=data["input"], model=data["model"])
        if data["encoding_format"] == "base64":
            vectors = [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in result.vectors]
        else:
            vectors = [row.tolist() for row in result.vectors]
        return Response({
            "object": "list", "model": result.spec,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        })


# ----------------------------------------------------------------------------- audio


class TranscriptionApi(OpenAIView):
    parser_classes = [MultiPartParser, FormParser]

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "TranscriptionInput"

        file = serializers.FileField()
        model = serializers.CharField(max_length=100)
        language = serializers.RegexField(r"^[a-z]{2,3}$", required=False)
        prompt = serializers.CharField(required=False, allow_blank=True, max_length=2000)
        response_format = serializers.ChoiceField(choices=["json", "text", "verbose_json", "srt", "vtt"],
                                                  default="json")
        temperature = serializers.FloatField(required=False, min_value=0, max_value=1)

    @extend_schema(operation_id="v1_audio_transcriptions_create", summary="Speech to text (OpenAI-compatible)",
                   request={"multipart/form-data": Input},
                   responses={200: inline_serializer("Transcription", {"text": serializers.CharField()})})
    def post(self, request: Request) -> Response | HttpResponse:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        upload = data["file"]
        if upload.size > settings.PARLEY_MAX_AUDIO_BYTES:
            raise ApplicationError(
                f"The file is {upload.size / 2**20:.1f} MiB; the limit is "
                f"{settings.PARLEY_MAX_AUDIO_BYTES / 2**20:.0f} MiB.", code="file_too_large", status=413,
                extra={"param": "file"})
        try:
            pcm = audio_decode(upload.read(), max_seconds=settings.PARLEY_MAX_AUDIO_SECONDS)
        except AudioError as exc:
            raise ApplicationError(str(exc), code="invalid_audio", extra={"param": "file"}) from exc
        result = transcribe(caller=self.caller(request), audio=pcm.tobytes(), model=data["model"],
                            language=data.get("language"), prompt=data.get("prompt"))
        fmt = data["response_format"]
        if fmt == "text":
            return HttpResponse(result["text"] + "\n", content_type="text/plain; charset=utf-8")
        if fmt in ("srt", "vtt"):
            return HttpResponse(_subtitles(result["segments"], fmt), content_type="text/plain; charset=utf-8")
        if fmt == "verbose_json":
            return Response({"task": "transcribe", "language": result["language"], "duration": result["duration"],
                             "text": result["text"], "segments": result["segments"], "model": result["spec"]})
        return Response({"text": result["text"]})


def _subtitles(segments: list[dict], fmt: str) -> str:
    def stamp(seconds: float) -> str:
        ms = int(round(seconds * 1000))
        sep = "," if fmt == "srt" else "."
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"

    lines = ["WEBVTT", ""] if fmt == "vtt" else []
    for i, seg in enumerate(segments, 1):
        if fmt == "srt":
            lines.append(str(i))
        lines += [f"{stamp(seg['start'])} --> {stamp(seg['end'])}", seg["text"], ""]
    return "\n".join(lines)


class SpeechApi(OpenAIView):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "SpeechInput"

        model = serializers.CharField(max_length=100)
        input = serializers.CharField(trim_whitespace=True)
        voice = serializers.CharField(required=False, max_length=100)
        response_format = serializers.ChoiceField(choices=sorted(CONTENT_TYPES), default="mp3")
        speed = serializers.FloatField(min_value=0.25, max_value=4.0, default=1.0)
        instructions = serializers.CharField(required=False, allow_blank=True)

        def validate_input(self, value: str) -> str:
            if len(value) > settings.PARLEY_MAX_SPEECH_CHARS:
                raise serializers.ValidationError(
                    f"is {len(value)} characters; the limit is {settings.PARLEY_MAX_SPEECH_CHARS}.")
            return value

    @extend_schema(operation_id="v1_audio_speech_create", summary="Text to speech (OpenAI-compatible)",
                   request=Input, responses={(200, "audio/wav"): bytes})
    def post(self, request: Request) -> HttpResponse:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        data = data.validated_data
        result = synthesize(caller=self.caller(request), text=data["input"], model=data["model"],
                            speed=data["speed"])
        fmt = data["response_format"]
        audio = audio_encode(base64.b64decode(result["audio"]), result["sample_rate"], fmt)
        response = HttpResponse(audio, content_type=CONTENT_TYPES[fmt])
        response["X-Sample-Rate"] = str(result["sample_rate"] if fmt in ("pcm", "wav") else "")
        response["X-Parley-Model"] = result["spec"]
        return response
