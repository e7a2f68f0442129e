"""Conversations API (session or API key) and the SSE stream for clients without WebSockets."""

from __future__ import annotations

import json

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from chat.models import Assistant
from chat.selectors import assistants_for_user, conversation_get, conversations_of_user, messages_tree
from chat.services import conversation_create, conversation_delete, conversation_rename
from chat.turns import Turn, TurnRefused


class ConversationOutput(serializers.Serializer):
    class Meta:
        ref_name = "Conversation"

    id = serializers.IntegerField()
    title = serializers.CharField()
    assistant = serializers.CharField(source="assistant.slug")
    use_knowledge = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    socket = serializers.SerializerMethodField()
    current_leaf_id = serializers.IntegerField(allow_null=True, help_text=(
        "The last message of the branch the conversation continues from (regenerated replies and edited "
        "messages are branches); null for a conversation without messages."))

    def get_socket(self, conversation) -> str:
        return f"/ws/chat/{conversation.pk}/"


class MessageOutput(serializers.Serializer):
    class Meta:
        ref_name = "ChatMessage"

    id = serializers.IntegerField()
    role = serializers.CharField()
    text = serializers.CharField()
    status = serializers.CharField()
    via = serializers.CharField()
    model = serializers.CharField(source="model_name")
    usage = serializers.JSONField()
    timings = serializers.JSONField()
    citations = serializers.JSONField()
    created_at = serializers.DateTimeField()
    parent_id = serializers.IntegerField(allow_null=True, help_text="The message this one follows (null: the first).")
    alternatives = serializers.SerializerMethodField(help_text=(
        "Its place among the messages that share its parent and role (regenerated replies, edited messages)."))
    on_path = serializers.SerializerMethodField(help_text="Whether it is on the branch the conversation continues.")

    @extend_schema_field(inline_serializer("MessageAlternatives", {
        "index": serializers.IntegerField(), "count": serializers.IntegerField()}))
    def get_alternatives(self, message) -> dict:
        alternatives = self.context["alternatives"][message.pk]
        return {"index": alternatives.index, "count": alternatives.count}

    def get_on_path(self, message) -> bool:
        return message.pk in self.context["path"]


class _ConversationApi(APIView):
    scope = "inference"
    permission_classes = [HasScope]

    def conversation(self, request: Request, conversation_id: int):
        conversation = conversation_get(user=request.user, conversation_id=conversation_id)
        if conversation is None:
            raise Http404("No such conversation.")
        return conversation


class ConversationListCreateApi(_ConversationApi):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "ConversationCreateInput"

        assistant = serializers.SlugField()

    @extend_schema(operation_id="conversations_list", responses=ConversationOutput(many=True),
                   summary="Your conversations, newest first")
    def get(self, request: Request) -> Response:
        return Response(ConversationOutput(conversations_of_user(user=request.user)[:200], many=True).data)

    @extend_schema(operation_id="conversations_create", request=Input, responses={201: ConversationOutput},
                   summary="Start a conversation with an assistant")
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        assistant = assistants_for_user(user=request.user).filter(slug=data.validated_data["assistant"]).first()
        if assistant is None:
            raise Http404("No such assistant.")
        conversation = conversation_create(user=request.user, assistant=assistant)
        return Response(ConversationOutput(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailApi(_ConversationApi):
    class Input(serializers.Serializer):
        class Meta:
            ref_name = "ConversationRenameInput"

        title = serializers.CharField(max_length=200)

    @extend_schema(operation_id="conversations_retrieve", responses=inline_serializer(
        "ConversationWithMessages", {"conversation": ConversationOutput(), "messages": MessageOutput(many=True)}))
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = self.conversation(request, conversation_id)
        tree, path = messages_tree(conversation=conversation)
        conversation.current_leaf_id = path[-1] if path else None
        context = {"alternatives": {m.pk: alternatives for m, alternatives in tree}, "path": set(path)}
        return Response({"conversation": ConversationOutput(conversation).data,
                         "messages": MessageOutput([m for m, _ in tree], many=True, context=context).data})

    @extend_schema(operation_id="conversations_rename", request=Input, responses=ConversationOutput)
    def patch(self, request: Request, conversation_id: int) -> Response:
        conversation = self.conversation(request, conversation_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(ConversationOutput(conversation_rename(conversation=conversation,
                                                               title=data.validated_data["title"])).data)

    @extend_schema(operation_id="conversations_delete", responses={204: None})
    def delete(self, request: Request, conversation_id: int) -> Response:
        conversation_delete(conversation=self.conversation(request, conversation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationMessageStreamApi(_ConversationApi):
    """Send a message and receive the reply as Server-Sent Events (the same frames as the socket)."""

    class Input(serializers.Serializer):
        class Meta:
            ref_name = "ConversationMessageInput"

        text = serializers.CharField(max_length=8000)
        use_knowledge = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(operation_id="conversations_messages_stream", request=Input,
                   responses={(200, "text/event-stream"): str}, summary="Send a message; stream the reply (SSE)")
    def post(self, request: Request, conversation_id: int) -> StreamingHttpResponse:
        conversation = self.conversation(request, conversation_id)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        # Touch the assistant here, in the request thread, so the stream never queries lazily.
        _ = conversation.assistant.route_alias
        api_key = request.auth if hasattr(request.auth, "scopes") else None
        turn = Turn(user=request.user, conversation=conversation, text=data.validated_data["text"],
                    use_knowledge=data.validated_data["use_knowledge"], api_key=api_key)
        # Refusals (a plan's limit, a busy conversation, a model the plan lacks) are HTTP errors with their own
        # status, before any stream starts; once it has started, failures arrive as `error` events.
        try:
            turn.prepare()
        except TurnRefused as refused:
            raise refused.error() from refused

        async def events():
            async for frame in turn.run():
                if frame["type"] == "queued":  # a comment line: the client needs no event for waiting
                    yield f": queued {frame['position']}\n\n"
                    continue
                yield f"event: {frame['type']}\ndata: {json.dumps(frame)}\n\n"

        response = _TurnStream(turn, events(), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response


class _TurnStream(StreamingHttpResponse):
    """The reply's SSE stream; closing it releases the turn even if the client left before the stream began
    (the turn was prepared in the view: the conversation is busy and the reply row open until released)."""

    def __init__(self, turn: Turn, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.turn = turn

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.turn.release()


class AssistantListApi(APIView):
    scope = "inference"
    permission_classes = [HasScope]

    class Output(serializers.ModelSerializer):
        class Meta:
            model = Assistant
            fields = ["slug", "name", "description", "emoji", "route_alias"]
            ref_name = "Assistant"

    @extend_schema(operation_id="assistants_list", responses=Output(many=True))
    def get(self, request: Request) -> Response:
        return Response(self.Output(assistants_for_user(user=request.user), many=True).data)
