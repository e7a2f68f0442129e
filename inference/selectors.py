"""Reads for models, routes and usage. Usage is always filtered to the caller."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from common.errors import ApplicationError
from inference.models import ModelSpec, Route, UsageRecord


def specs_enabled(*, task: str | None = None) -> QuerySet[ModelSpec]:
    specs = ModelSpec.objects.filter(enabled=True)
    if task:
        specs = specs.filter(task=task)
    return specs.order_by("task", "name")


def routes_all() -> QuerySet[Route]:
    return Route.objects.prefetch_related("entries__spec").order_by("task", "alias")


def route_resolve(*, model: str, task: str) -> tuple[str, list[ModelSpec]]:
    """The route alias ('' for a bare model) and the ordered specs that may serve `model`."""
    spec = ModelSpec.objects.filter(name=model).first()
    if spec is not None:
        specs, alias = [spec], ""
    else:
        route = Route.objects.filter(alias=model).prefetch_related("entries__spec").first()
        if route is None:
            raise ApplicationError(
                f"The model `{model}` does not exist. GET /v1/models lists the models you can use.",
                code="model_not_found", status=404,
            )
        specs, alias = [entry.spec for entry in route.entries.all()], route.alias
    wrong = [s for s in specs if s.task != task]
    if wrong:
        raise ApplicationError(
            f"`{model}` is a {wrong[0].get_task_display().lower()} model and cannot serve this endpoint.",
            code="model_not_supported", status=400,
        )
    specs = [s for s in specs if s.enabled]
    if not specs:
        raise ApplicationError(f"The model `{model}` is disabled.", code="model_not_found", status=404)
    return alias, specs


def usage_records_of_user(*, user: User, since: datetime | None = None) -> QuerySet[UsageRecord]:
    records = UsageRecord.objects.filter(user=user).select_related("api_key")
    if since:
        records = records.filter(created_at__gte=since)
    return records.order_by("-created_at", "-id")


def usage_summary_of_user(*, user: User, days: int = 30) -> list[dict]:
    """Per day and model: requests, tokens, audio seconds, characters and cost."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        UsageRecord.objects.filter(user=user, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "model_name", "task")
        .annotate(
            requests=Count("id"), prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
            audio_seconds=Sum("audio_seconds"), characters=Sum("characters"), cost=Sum("cost"),
        )
        .order_by("-day", "model_name")
    )
    return list(rows)


def usage_tokens_today(*, user: User) -> int:
    today = date.today()
    total = UsageRecord.objects.filter(user=user, created_at__date=today).aggregate(
        tokens=Sum("prompt_tokens") + Sum("completion_tokens")
    )["tokens"]
    return int(total or 0)
