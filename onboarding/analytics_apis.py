"""The analytics API: GET /api/analytics/{timeseries,top,events,funnel}, for staff with the `analytics:read` scope.

Each view parses its query with its own input serializer, calls one selector and renders its own output
serializer. Dates are whole UTC days; `until` is inclusive, as on the dashboard.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasScope
from common.errors import ApplicationError
from config.admin_site import staff_second_factor_passed
from onboarding import consent_views
from onboarding.selectors import (
    BREAKDOWNS,
    DATE_MAX,
    DATE_MIN,
    DIMENSIONS,
    FUNNEL_STEPS_MAX,
    FUNNEL_STEPS_MIN,
    INTERVALS,
    RANGE_DAYS_MAX,
    WINDOW_MAX,
    WINDOW_MIN,
    analytics_event_names,
    analytics_events_by_name,
    analytics_funnel,
    analytics_timeseries,
    analytics_top,
)

DEFAULT_DAYS = 30
SCOPE = "analytics:read"


class IsStaff(BasePermission):
    """The caller (the key's owner, or the signed-in user) is staff; a session also needs its second factor,
    as admin and the dashboard do. Listed after HasScope, so a key without the scope hears about the scope."""

    message = "The analytics API is for staff, and this account is not staff."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        if hasattr(request.auth, "scopes"):  # an API key: made by a staff member, scoped
            return True
        if not staff_second_factor_passed(request._request):
            self.message = "Staff reach the analytics API from a session signed in with a second factor, or with a key."
            return False
        return True


def _errors(detail: object, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        return [m for key, value in detail.items()
                for m in _errors(value, "" if key == "non_field_errors" else f"{prefix}{key}: ")]
    if isinstance(detail, list):
        return [m for value in detail for m in _errors(value, prefix)]
    return [f"{prefix}{detail}"]


def query_valid(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The query string through its serializer; a 400 whose message names each bad parameter."""
    serializer = serializer_class(data=request.query_params)
    if not serializer.is_valid():
        raise ApplicationError(" ".join(_errors(serializer.errors)), code="invalid_query",
                               extra={"fields": serializer.errors})
    return serializer.validated_data


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


class RangeInput(serializers.Serializer):
    since = serializers.DateField(required=False, help_text="First day (UTC), YYYY-MM-DD. Default: 30 days ago.",
                                  error_messages={"invalid": "Write the date as YYYY-MM-DD."})
    until = serializers.DateField(required=False, help_text="Last day (UTC), inclusive. Default: today.",
                                  error_messages={"invalid": "Write the date as YYYY-MM-DD."})

    def validate(self, data: dict) -> dict:
        for name in ("since", "until"):
            if name in data and not DATE_MIN <= data[name] <= DATE_MAX:
                raise serializers.ValidationError({name: f"Pick a date from {DATE_MIN} to {DATE_MAX}."})
        until_day = data.get("until") or timezone.now().astimezone(UTC).date()
        since_day = data.get("since") or until_day - timedelta(days=DEFAULT_DAYS - 1)
        if until_day < since_day:
            raise serializers.ValidationError(f"until ({until_day}) is before since ({since_day}); swap them.")
        days = (until_day - since_day).days + 1
        if days > RANGE_DAYS_MAX:
            raise serializers.ValidationError(f"The range is {days} days; ask for at most {RANGE_DAYS_MAX}.")
        return {**data, "since": _day_start(since_day), "until": _day_start(until_day + timedelta(days=1)),
                "days": days}


# ----------------------------------------------------------------------------- time series


class AnalyticsTimeseriesApi(APIView):
    """Visitors, page views and events per day or hour, with the previous period of the same length."""

    scope = SCOPE
    permission_classes = [HasScope, IsStaff]

    class InputSerializer(RangeInput):
        class Meta:
            ref_name = "AnalyticsTimeseriesInput"

        interval = serializers.ChoiceField(choices=INTERVALS, default="day")

        def validate(self, data: dict) -> dict:
            data = super().validate(data)
            if data["interval"] == "hour" and data["days"] > 31:
                raise serializers.ValidationError("Hourly buckets cover at most 31 days; use interval=day.")
            return data

    class BucketSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsBucket"

        start = serializers.DateTimeField()
        visitors = serializers.IntegerField(help_text="Distinct daily visitor hashes in the bucket.")
        pageviews = serializers.IntegerField()
        events = serializers.IntegerField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsTimeseriesOutput"

        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        interval = serializers.CharField()
        visitors = serializers.IntegerField(help_text="Visitor-days: the hash rotates daily, so a person who came "
                                                      "on three days counts three times.")
        pageviews = serializers.IntegerField()
        previous_visitors = serializers.IntegerField()
        previous_pageviews = serializers.IntegerField()
        buckets = serializers.ListField(child=serializers.DictField())
        previous = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[InputSerializer], operation_id="analytics_timeseries",
                   summary="Visitors and page views over time (staff)",
                   responses={200: OutputSerializer, 400: OpenApiResponse(description="A bad parameter, named.")})
    def get(self, request: Request) -> Response:
        data = query_valid(self.InputSerializer, request)
        series = analytics_timeseries(since=data["since"], until=data["until"], interval=data["interval"])
        buckets = self.BucketSerializer(series.buckets, many=True).data
        previous = self.BucketSerializer(series.previous, many=True).data
        return Response(self.OutputSerializer({**series.__dict__, "buckets": buckets, "previous": previous}).data)


# ----------------------------------------------------------------------------- top


class AnalyticsTopApi(APIView):
    """The top pages, referrers, UTM campaigns, devices or countries."""

    scope = SCOPE
    permission_classes = [HasScope, IsStaff]

    class InputSerializer(RangeInput):
        class Meta:
            ref_name = "AnalyticsTopInput"

        dimension = serializers.ChoiceField(choices=DIMENSIONS)
        limit = serializers.IntegerField(default=20, min_value=1, max_value=100)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsTopOutput"

        label = serializers.CharField(help_text="The path, referrer host, 'source / medium / campaign', device "
                                                "class or country code.")
        count = serializers.IntegerField(help_text="Page views for pages, events otherwise.")
        visitors = serializers.IntegerField(help_text="Visitor-days.")

    @extend_schema(parameters=[InputSerializer], operation_id="analytics_top",
                   summary="Top pages, referrers, UTM campaigns, devices or countries (staff)",
                   responses={200: OutputSerializer(many=True), 400: OpenApiResponse(description="A bad parameter.")})
    def get(self, request: Request) -> Response:
        data = query_valid(self.InputSerializer, request)
        rows = analytics_top(since=data["since"], until=data["until"], dimension=data["dimension"],
                             limit=data["limit"])
        return Response(self.OutputSerializer(rows, many=True).data)


# ----------------------------------------------------------------------------- events by name


class AnalyticsEventsApi(APIView):
    """How often each event happened, by how many users and visitors."""

    scope = SCOPE
    permission_classes = [HasScope, IsStaff]

    class InputSerializer(RangeInput):
        class Meta:
            ref_name = "AnalyticsEventsInput"

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsEventsOutput"

        name = serializers.CharField()
        count = serializers.IntegerField()
        users = serializers.IntegerField(help_text="Distinct signed-in users.")
        visitors = serializers.IntegerField(help_text="Visitor-days.")

    def dispatch(self, request, *args, **kwargs):
        # One path, two audiences (the issue names both): staff GET the counts here, with a key or a
        # session; browsers POST their consented batches by sendBeacon, with neither a key nor a CSRF
        # token, so the consent module's plain view takes those before DRF's authentication could refuse
        # them (docs/events.md documents that POST).
        if request.method == "POST":
            return consent_views.analytics_events(request)
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(parameters=[InputSerializer], operation_id="analytics_events",
                   summary="Events by name (staff)",
                   responses={200: OutputSerializer(many=True), 400: OpenApiResponse(description="A bad parameter.")})
    def get(self, request: Request) -> Response:
        data = query_valid(self.InputSerializer, request)
        return Response(self.OutputSerializer(analytics_events_by_name(since=data["since"], until=data["until"]),
                                              many=True).data)


# ----------------------------------------------------------------------------- funnel


class AnalyticsFunnelApi(APIView):
    """Users who did step 1 in the range, and how many did each next step within the window."""

    scope = SCOPE
    permission_classes = [HasScope, IsStaff]

    class InputSerializer(RangeInput):
        class Meta:
            ref_name = "AnalyticsFunnelInput"

        step = serializers.ListField(
            child=serializers.CharField(max_length=64), min_length=FUNNEL_STEPS_MIN, max_length=FUNNEL_STEPS_MAX,
            help_text=f"Event names, in order: repeat the parameter {FUNNEL_STEPS_MIN} to {FUNNEL_STEPS_MAX} times.")
        window_seconds = serializers.IntegerField(
            default=86400, min_value=int(WINDOW_MIN.total_seconds()), max_value=int(WINDOW_MAX.total_seconds()),
            help_text="Conversion window from step 1, in seconds (a minute to 90 days).")
        ordered = serializers.BooleanField(default=True, help_text="false: the later steps may come in any order.")
        breakdown = serializers.ChoiceField(choices=BREAKDOWNS, default="", allow_blank=True,
                                            help_text="plan: the plan at step 1; cohort: the sign-up week.")

        def validate_step(self, steps: list[str]) -> list[str]:
            unknown = sorted(set(steps) - set(analytics_event_names()))
            if unknown:
                raise serializers.ValidationError(f"Unknown event name(s): {', '.join(unknown)}; use names "
                                                  "that /api/analytics/events lists.")
            return steps

        def validate(self, data: dict) -> dict:
            data = super().validate(data)
            if not data["ordered"] and len(set(data["step"])) != len(data["step"]):
                raise serializers.ValidationError("In any order, each step must be a different event.")
            return data

    class StepSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsFunnelStep"

        index = serializers.IntegerField()
        name = serializers.CharField()
        users = serializers.IntegerField()
        conversion = serializers.FloatField(allow_null=True, help_text="Percent of the previous step.")
        of_first = serializers.FloatField(allow_null=True, help_text="Percent of step 1.")
        drop_off = serializers.IntegerField(allow_null=True)
        median_s = serializers.FloatField(allow_null=True, help_text="Median seconds from step 1.")
        p90_s = serializers.FloatField(allow_null=True)
        median_from_previous_s = serializers.FloatField(allow_null=True)
        p90_from_previous_s = serializers.FloatField(allow_null=True)

    class GroupSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsFunnelGroup"

        key = serializers.CharField(allow_blank=True)
        steps = serializers.ListField(child=serializers.DictField())

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AnalyticsFunnelOutput"

        steps = serializers.ListField(child=serializers.CharField())
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        window_seconds = serializers.IntegerField()
        ordered = serializers.BooleanField()
        breakdown = serializers.CharField(allow_blank=True)
        total = serializers.DictField()
        groups = serializers.ListField(child=serializers.DictField())

    def _group(self, group) -> dict:
        return self.GroupSerializer({"key": group.key, "steps": self.StepSerializer(group.steps, many=True).data}).data

    @extend_schema(parameters=[InputSerializer], operation_id="analytics_funnel",
                   summary="A funnel of events within a conversion window (staff)",
                   responses={200: OutputSerializer, 400: OpenApiResponse(description="A bad parameter.")})
    def get(self, request: Request) -> Response:
        data = query_valid(self.InputSerializer, request)
        funnel = analytics_funnel(steps=data["step"], since=data["since"], until=data["until"],
                                  window=timedelta(seconds=data["window_seconds"]), ordered=data["ordered"],
                                  breakdown=data["breakdown"])
        return Response(self.OutputSerializer({
            "steps": funnel.steps, "since": funnel.since, "until": funnel.until,
            "window_seconds": int(funnel.window.total_seconds()), "ordered": funnel.ordered,
            "breakdown": funnel.breakdown, "total": self._group(funnel.total),
            "groups": [self._group(group) for group in funnel.groups]}).data)
