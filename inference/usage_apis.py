"""Parley's usage API: callers only ever see their own usage."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from common.text import control_character_find
from inference.selectors import usage_records_of_user, usage_summary_of_user


class UsageRecordOutput(serializers.Serializer):
    request_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    model = serializers.CharField(source="model_name")
    route = serializers.CharField(source="route_alias")
    task = serializers.CharField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    audio_seconds = serializers.FloatField()
    characters = serializers.IntegerField()
    ttft_ms = serializers.FloatField(allow_null=True)
    duration_ms = serializers.FloatField()
    cost = serializers.DecimalField(max_digits=14, decimal_places=8)
    outcome = serializers.CharField()
    metering = serializers.CharField(help_text="How the plan counted it: chat, embed, stt, tts or search (a request "
                                               "of its own); lookup, summary, title, tool_step or fallback (part "
                                               "of a request: its tokens count); empty on rows from before it was "
                                               "recorded.")
    api_key = serializers.CharField(source="api_key.prefix", default=None)


class UsageSummaryApi(APIView):
    scope = "usage:read"
    permission_classes = [HasScope]

    class Output(serializers.Serializer):
        class Meta:
            ref_name = "UsageSummaryOutput"

        day = serializers.DateField()
        model = serializers.CharField(source="model_name")
        task = serializers.CharField()
        requests = serializers.IntegerField()
        prompt_tokens = serializers.IntegerField()
        completion_tokens = serializers.IntegerField()
        audio_seconds = serializers.FloatField()
        characters = serializers.IntegerField()
        cost = serializers.DecimalField(max_digits=14, decimal_places=8, help_text="At the model's list price.")
        reference = serializers.CharField(help_text="The API this use is compared with (admin's reference price).")
        reference_cost = serializers.DecimalField(max_digits=14, decimal_places=4,
                                                  help_text="What the same use would have cost there, USD.")
        compute_cost = serializers.DecimalField(
            max_digits=14, decimal_places=4,
            help_text="What it cost to run here: compute time × the operator's cost per hour, USD.")

    @extend_schema(operation_id="usage_summary", summary="Your usage by day and model (last 30 days)",
                   responses=Output(many=True))
    def get(self, request: Request) -> Response:
        return Response(self.Output(usage_summary_of_user(user=request.user), many=True).data)


class UsageRecordListApi(APIView):
    scope = "usage:read"
    permission_classes = [HasScope]

    @extend_schema(operation_id="usage_records_list", summary="Your latest 100 requests",
                   description="Newest first; what counts against nothing in a plan (a voice turn's partial "
                               "transcripts, the batches of a document's ingest) is left out.",
                   responses=UsageRecordOutput(many=True))
    def get(self, request: Request) -> Response:
        records = usage_records_of_user(user=request.user, metered_only=True)[:100]
        return Response(UsageRecordOutput(records, many=True).data)


class UsageRecordDetailApi(APIView):
    scope = "usage:read"
    permission_classes = [HasScope]

    @extend_schema(operation_id="usage_records_retrieve", summary="One of your requests",
                   responses=UsageRecordOutput)
    def get(self, request: Request, request_id: str) -> Response:
        # An id no request can have (a NUL, which PostgreSQL refuses in text, or over-long) is
        # simply not found, like another user's: filtering by the caller first hides those too.
        if len(request_id) > 64 or control_character_find(request_id) is not None:
            raise NotFound("No such usage record.")
        record = get_object_or_404(usage_records_of_user(user=request.user), request_id=request_id)
        return Response(UsageRecordOutput(record).data)
