"""The staff analytics dashboard (/staff/analytics/): parse the query, call the selectors, render or send CSV.

Staff reach it as they reach admin: signed in, `is_staff`, and with a second factor in this session
(config.admin_site). Every table has a CSV link, `?format=csv&table=<name>` with the same query, which
runs the one selector behind that table and writes its rows.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from common.errors import ApplicationError
from config.admin_site import staff_second_factor_passed
from onboarding.selectors import (
    BREAKDOWNS,
    DATE_MAX,
    DATE_MIN,
    DIMENSIONS,
    FUNNEL_STEPS_MAX,
    FUNNEL_STEPS_MIN,
    INTERVALS,
    RANGE_DAYS_MAX,
    RETENTION_WEEKS,
    WINDOW_MAX,
    WINDOW_MIN,
    AnalyticsFunnel,
    analytics_active_users,
    analytics_alerts_recent,
    analytics_event_names,
    analytics_events_by_name,
    analytics_funnel,
    analytics_retention,
    analytics_timeseries,
    analytics_top,
)

DEFAULT_DAYS = 30
WINDOW_UNITS = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}
TOP_TITLES = {"pages": "Top pages", "referrers": "Top referrers", "utm": "UTM campaigns (source / medium / campaign)",
              "devices": "Devices", "countries": "Countries"}
TABLES = ("timeseries", *DIMENSIONS, "events", "active", "retention", "funnel")


def staff_required(view: Callable) -> Callable:
    """Anonymous → log-in; signed in but not staff → 403; staff without a second factor this session →
    admin's log-in, which sends them to set one up or enter a code and then back here."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            return render(request, "onboarding/analytics/forbidden.html", status=403)
        if not staff_second_factor_passed(request):
            return HttpResponseRedirect(f"{reverse('admin:login')}?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapper


# ----------------------------------------------------------------------------- parameters


@dataclass
class Params:
    since_day: date
    until_day: date  # inclusive, as the form shows it
    interval: str
    steps: list[str] = field(default_factory=list)
    window_value: int = 1
    window_unit: str = "days"
    ordered: bool = True
    breakdown: str = ""

    @property
    def since(self) -> datetime:
        return datetime.combine(self.since_day, time.min, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.until_day + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def window(self) -> timedelta:
        return self.window_value * WINDOW_UNITS[self.window_unit]

    @property
    def window_text(self) -> str:
        unit = self.window_unit.removesuffix("s") if self.window_value == 1 else self.window_unit
        return f"{self.window_value} {unit}"


def _day(query: QueryDict, name: str, default: date) -> date:
    raw = query.get(name, "").strip()
    if not raw:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ApplicationError(f"{name}: {raw[:40]!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-03-01.",
                               code="invalid_date") from None
    if not DATE_MIN <= day <= DATE_MAX:
        raise ApplicationError(f"{name}: pick a date from {DATE_MIN} to {DATE_MAX}.", code="invalid_date")
    return day


def params_parse(query: QueryDict, *, today: date) -> Params:
    """The dashboard's query string, checked; raises ApplicationError (400) saying what to change."""
    until_day = _day(query, "until", today)
    since_day = _day(query, "since", until_day - timedelta(days=DEFAULT_DAYS - 1))
    if until_day < since_day:
        raise ApplicationError(f"until ({until_day}) is before since ({since_day}); swap them or pick a later until.",
                               code="invalid_range")
    days = (until_day - since_day).days + 1
    if days > RANGE_DAYS_MAX:
        raise ApplicationError(f"The range is {days} days; pick at most {RANGE_DAYS_MAX} days.", code="range_too_long")
    interval = query.get("interval", "day") or "day"
    if interval not in INTERVALS:
        raise ApplicationError(f"interval must be one of {', '.join(INTERVALS)}, not {interval[:20]!r}.")
    if interval == "hour" and days > 31:
        raise ApplicationError(f"Hourly buckets cover at most 31 days and this range has {days}; use interval=day "
                               "or a shorter range.", code="range_too_long")
    params = Params(since_day=since_day, until_day=until_day, interval=interval)

    steps = [name.strip() for name in query.getlist("step") if name.strip()]
    if not steps:
        return params
    if not FUNNEL_STEPS_MIN <= len(steps) <= FUNNEL_STEPS_MAX:
        raise ApplicationError(f"A funnel has {FUNNEL_STEPS_MIN} to {FUNNEL_STEPS_MAX} steps; this one has "
                               f"{len(steps)}.", code="invalid_steps")
    known = set(analytics_event_names())
    unknown = [name for name in steps if name not in known]
    if unknown:
        raise ApplicationError(f"Unknown event name(s): {', '.join(n[:64] for n in unknown)}. Pick steps from the "
                               "events recorded (the events-by-name table lists them).", code="unknown_event")
    ordered = query.get("order", "ordered") != "any"
    if not ordered and len(set(steps)) != len(steps):
        raise ApplicationError("In any order, each step must be a different event; remove the repeated one or "
                               "choose 'in order'.", code="invalid_steps")
    unit = query.get("window_unit", "days")
    if unit not in WINDOW_UNITS:
        raise ApplicationError(f"window_unit must be one of {', '.join(WINDOW_UNITS)}.", code="invalid_window")
    raw = query.get("window", "").strip() or "1"
    try:
        value = int(raw)
    except ValueError:
        raise ApplicationError(f"window: {raw[:20]!r} is not a whole number.", code="invalid_window") from None
    # Bounded before multiplying: a timedelta of 10**20 days overflows.
    if not 1 <= value <= WINDOW_MAX / WINDOW_UNITS[unit] or not WINDOW_MIN <= value * WINDOW_UNITS[unit]:
        raise ApplicationError(f"The conversion window must be from 1 minute to {WINDOW_MAX.days} days; "
                               f"{value} {unit} is not.", code="invalid_window")
    breakdown = query.get("breakdown", "")
    if breakdown not in BREAKDOWNS:
        raise ApplicationError("breakdown must be empty, plan or cohort.", code="invalid_breakdown")
    params.steps, params.window_value, params.window_unit = steps, value, unit
    params.ordered, params.breakdown = ordered, breakdown
    return params


# ----------------------------------------------------------------------------- tables
# Each table: its title, header row and rows, from one selector. The page and the CSV both use these.


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def table_rows(name: str, params: Params) -> tuple[list[str], list[list]]:
    """(header, rows) of one table, exactly as its CSV has them."""
    since, until = params.since, params.until
    if name == "timeseries":
        series = analytics_timeseries(since=since, until=until, interval=params.interval)
        rows = [[f"{b.start:%Y-%m-%d %H:%M}", b.visitors, b.pageviews, b.events,
                 f"{p.start:%Y-%m-%d %H:%M}", p.visitors, p.pageviews]
                for b, p in zip(series.buckets, series.previous, strict=False)]
        return (["start (UTC)", "visitors", "page views", "events", "previous start", "previous visitors",
                 "previous page views"], rows)
    if name in DIMENSIONS:
        top = analytics_top(since=since, until=until, dimension=name)
        label = {"pages": "path", "referrers": "referrer host", "utm": "source / medium / campaign",
                 "devices": "device", "countries": "country"}[name]
        return [label, "page views" if name == "pages" else "events", "visitors"], [
            [r.label, r.count, r.visitors] for r in top]
    if name == "events":
        rows = analytics_events_by_name(since=since, until=until)
        return ["event", "count", "users", "visitors"], [[r.name, r.count, r.users, r.visitors] for r in rows]
    if name == "active":
        active = analytics_active_users(until=until)
        return ["until (UTC)", "daily", "weekly", "monthly"], [
            [f"{active.until:%Y-%m-%d %H:%M}", active.daily, active.weekly, active.monthly]]
    if name == "retention":
        retention = analytics_retention(since=since, until=until, weeks=RETENTION_WEEKS)
        return ["cohort week", "users", *[f"week {n} %" for n in range(RETENTION_WEEKS)]], [
            [f"{c.week:%Y-%m-%d}", c.users, *[_pct(v) for v in c.active]] for c in retention.cohorts]
    if name == "funnel":
        return funnel_rows(_funnel(params))
    raise ApplicationError(f"table must be one of {', '.join(TABLES)}.", code="invalid_table")


def _funnel(params: Params) -> AnalyticsFunnel:
    if not params.steps:
        raise ApplicationError("Choose the funnel's steps (step=... two to six times) to download it.",
                               code="invalid_steps")
    return analytics_funnel(steps=params.steps, since=params.since, until=params.until, window=params.window,
                            ordered=params.ordered, breakdown=params.breakdown)


def funnel_rows(funnel: AnalyticsFunnel) -> tuple[list[str], list[list]]:
    header = ["group", "step", "event", "users", "conversion from previous %", "conversion from step 1 %",
              "drop-off", "median s from step 1", "p90 s from step 1", "median s from previous",
              "p90 s from previous"]
    rows = []
    for group in [funnel.total, *funnel.groups]:
        for s in group.steps:
            rows.append([group.key or "all", s.index, s.name, s.users, _pct(s.conversion), _pct(s.of_first),
                         "" if s.drop_off is None else s.drop_off, _secs(s.median_s), _secs(s.p90_s),
                         _secs(s.median_from_previous_s), _secs(s.p90_from_previous_s)])
    return header, rows


def _csv(name: str, params: Params, header: list[str], rows: list[list]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="analytics-{name}-{params.since_day:%Y%m%d}-{params.until_day:%Y%m%d}.csv"')
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(rows)
    return response


# ----------------------------------------------------------------------------- the page


def _context(request: HttpRequest, **extra) -> dict:
    # Admin's model sidebar would list no models to staff without model permissions; this page needs none.
    return {**admin.site.each_context(request), "title": "Product analytics", "is_nav_sidebar_enabled": False,
            **extra}


@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    today = timezone.now().astimezone(UTC).date()
    try:
        params = params_parse(request.GET, today=today)
        if request.GET.get("format") == "csv":
            name = request.GET.get("table", "")
            header, rows = table_rows(name, params)
            return _csv(name, params, header, rows)
    except ApplicationError as exc:
        if request.GET.get("format") == "csv":
            return HttpResponse(exc.message, status=exc.status, content_type="text/plain; charset=utf-8")
        return render(request, "onboarding/analytics/dashboard.html", _context(
            request, error=exc.message, form=_range_fields(request.GET), event_names=analytics_event_names(),
            builder=_builder(request.GET), window_units=list(WINDOW_UNITS)), status=exc.status)
    return render(request, "onboarding/analytics/dashboard.html", _context(request, **_sections(request, params)))


def _range_fields(query: QueryDict) -> dict:
    """The range form's fields as the user typed them (so a 400 page keeps them to correct)."""
    return {"since": query.get("since", ""), "until": query.get("until", ""), "interval": query.get("interval", "day")}


def _builder(query: QueryDict) -> dict:
    """The funnel builder's fields as the user left them (six step slots)."""
    steps = [name for name in query.getlist("step") if name.strip()][:FUNNEL_STEPS_MAX]
    return {"slots": steps + [""] * (FUNNEL_STEPS_MAX - len(steps)), "window": query.get("window", "1") or "1",
            "window_unit": query.get("window_unit", "days"), "order": query.get("order", "ordered"),
            "breakdown": query.get("breakdown", "")}


def _sections(request: HttpRequest, params: Params) -> dict:
    series = analytics_timeseries(since=params.since, until=params.until, interval=params.interval)
    fmt = "%Y-%m-%d" if params.interval == "day" else "%m-%d %H:00"
    chart: dict = {
        "labels": [f"{b.start:{fmt}}" for b in series.buckets],
        "visitors": [b.visitors for b in series.buckets],
        "pageviews": [b.pageviews for b in series.buckets],
        "previous_visitors": [b.visitors for b in series.previous],
        "previous_pageviews": [b.pageviews for b in series.previous],
    }
    query = request.GET.copy()
    query.pop("format", None)
    query.pop("table", None)
    csv_urls = {}
    for name in TABLES:
        link = query.copy()
        link["format"], link["table"] = "csv", name
        csv_urls[name] = f"?{link.urlencode()}"
    tops = []
    for name in DIMENSIONS:
        header, rows = table_rows(name, params)
        tops.append({"name": name, "title": TOP_TITLES[name], "header": header, "rows": rows, "csv": csv_urls[name]})
    funnel = _funnel(params) if params.steps else None
    if funnel is not None:
        chart["funnel"] = {"labels": [f"{s.index}. {s.name}" for s in funnel.total.steps],
                           "users": [s.users for s in funnel.total.steps]}
    return {
        "params": params, "form": {"since": f"{params.since_day}", "until": f"{params.until_day}",
                                   "interval": params.interval}, "series": series, "chart": chart, "tops": tops,
        "events": analytics_events_by_name(since=params.since, until=params.until),
        "active": analytics_active_users(until=params.until),
        "retention": analytics_retention(since=params.since, until=params.until, weeks=RETENTION_WEEKS),
        "funnel": funnel, "funnel_groups": [funnel.total, *funnel.groups] if funnel else [],
        "alerts": list(analytics_alerts_recent(since=timezone.now() - timedelta(days=7))),
        "event_names": analytics_event_names(), "builder": _builder(request.GET), "csv": csv_urls,
        "previous_since": params.since_day - (params.until_day - params.since_day)
        - timedelta(days=1), "previous_until": params.since_day - timedelta(days=1),
        "window_units": list(WINDOW_UNITS), "retention_weeks": range(RETENTION_WEEKS),
        "change": {"visitors": _change(series.visitors, series.previous_visitors),
                   "pageviews": _change(series.pageviews, series.previous_pageviews)},
    }


def _change(now: int, before: int) -> float | None:
    return None if not before else 100 * (now - before) / before
