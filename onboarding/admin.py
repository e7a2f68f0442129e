from __future__ import annotations

import csv
from datetime import datetime, time, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from onboarding.models import Award, Badge, Journey, StepProgress, TourStep
from onboarding.selectors import Funnel, funnel_compute


@admin.register(TourStep)
class TourStepAdmin(admin.ModelAdmin):
    list_display = ["order", "title", "target_url", "target_url_setting", "target_element", "action", "enabled"]
    list_display_links = ["title"]
    list_editable = ["order", "enabled"]
    search_fields = ["title", "slug"]


@admin.register(Badge)
class BadgeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "rule", "threshold", "order"]
    list_editable = ["threshold"]
    readonly_fields = ["rule"]


@admin.register(Award)
class AwardAdmin(admin.ModelAdmin):
    list_display = ["badge", "user", "awarded_at", "event"]
    list_filter = ["badge"]
    search_fields = ["user__email"]
    readonly_fields = ["user", "badge", "awarded_at", "event", "event_data", "seen_at"]

    def has_add_permission(self, request) -> bool:
        return False  # badges are earned through events, never handed out by hand


class FunnelForm(forms.Form):
    since = forms.DateField(label="Sign-ups from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="to (inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    window = forms.IntegerField(label="Conversion window (days)", min_value=1, max_value=365, required=False)


def funnel_params(data) -> tuple[datetime, datetime, int, FunnelForm]:
    """The period and window from the query string; defaults: the last 12 weeks, the configured window."""
    form = FunnelForm(data)
    cleaned = form.cleaned_data if form.is_valid() else {}
    today = timezone.localdate()
    since_day = cleaned.get("since") or today - timedelta(weeks=12)
    until_day = cleaned.get("until") or today
    if until_day < since_day:
        since_day, until_day = until_day, since_day
    tz = timezone.get_current_timezone()
    since = datetime.combine(since_day, time.min, tzinfo=tz)
    until = datetime.combine(until_day + timedelta(days=1), time.min, tzinfo=tz)
    window = cleaned.get("window") or settings.PARLEY_ONBOARDING_FUNNEL_WINDOW_DAYS
    return since, until, window, form


def funnel_csv(funnel: Funnel) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="onboarding-funnel-{funnel.since:%Y%m%d}-{funnel.until:%Y%m%d}.csv"')
    writer = csv.writer(response)
    writer.writerow(["stage", "users", "percent_of_signups", "conversion_from_previous_percent",
                     "drop_off_from_previous", "median_seconds", "p90_seconds"])
    for stage in funnel.stages:
        writer.writerow([stage.label, stage.users, _round(stage.of_signups), _round(stage.conversion),
                         "" if stage.drop_off is None else stage.drop_off, _round(stage.median_s),
                         _round(stage.p90_s)])
    writer.writerow([])
    writer.writerow(["cohort_week", "signups", "verified", "tour_started", "tour_finished", "first_chat"])
    for cohort in funnel.cohorts:
        writer.writerow([f"{cohort.week:%Y-%m-%d}", cohort.signups, cohort.verified, cohort.started,
                         cohort.finished, cohort.first_chat])
    return response


def _round(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    list_display = ["user", "signed_up_at", "verified_at", "tour_state", "current_step", "run", "tour_finished_at",
                    "first_chat_at"]
    list_filter = ["tour_state"]
    search_fields = ["user__email"]
    readonly_fields = [field.name for field in Journey._meta.fields]
    change_list_template = "admin/onboarding/journey/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def get_urls(self):
        funnel = path("funnel/", self.admin_site.admin_view(self.funnel_view), name="onboarding_funnel")
        return [funnel, *super().get_urls()]

    def funnel_view(self, request: HttpRequest) -> HttpResponse:
        since, until, window, form = funnel_params(request.GET)
        funnel = funnel_compute(since=since, until=until, window_days=window)
        if request.GET.get("format") == "csv":
            return funnel_csv(funnel)
        chart = {
            "labels": [stage.label for stage in funnel.stages],
            "users": [stage.users for stage in funnel.stages],
            "cohorts": {
                "labels": [f"{c.week:%Y-%m-%d}" for c in funnel.cohorts],
                "signups": [c.signups for c in funnel.cohorts],
                "finished": [c.finished for c in funnel.cohorts],
                "first_chat": [c.first_chat for c in funnel.cohorts],
            },
        }
        query = request.GET.copy()
        query["format"] = "csv"
        context = {**self.admin_site.each_context(request), "title": "Onboarding funnel", "funnel": funnel,
                   "form": form, "chart": chart, "csv_query": query.urlencode(), "opts": self.model._meta,
                   "until_inclusive": funnel.until - timedelta(days=1)}
        return render(request, "admin/onboarding/funnel.html", context)


@admin.register(StepProgress)
class StepProgressAdmin(admin.ModelAdmin):
    list_display = ["user", "step", "reached_at", "completed_at"]
    list_filter = ["step"]
    search_fields = ["user__email"]
    readonly_fields = ["user", "step", "reached_at", "completed_at"]

    def has_add_permission(self, request) -> bool:
        return False
