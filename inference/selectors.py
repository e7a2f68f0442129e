"""Reads for models, routes and usage. Usage is always filtered to the caller."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from common.errors import ApplicationError
from common.versioned import VersionedCache
from inference.models import ModelSpec, ReferencePrice, Route, UsageRecord

CENTS_4 = Decimal("0.0001")

logger = logging.getLogger(__name__)


def specs_enabled(*, task: str | None = None) -> QuerySet[ModelSpec]:
    specs = ModelSpec.objects.filter(enabled=True)
    if task:
        specs = specs.filter(task=task)
    return specs.order_by("task", "name")


def routes_all() -> QuerySet[Route]:
    return Route.objects.prefetch_related("entries__spec").order_by("task", "alias")


# ----------------------------------------------------------------------------- the catalog, cached
#
# Every model request resolves its route, checks who may use it and names the model that answered.
# Read from the database each time, that was seven queries per request (the largest part of the API's
# own overhead). The catalog changes rarely (admin, installs, the enabled switch), so each process
# keeps a copy and checks one Redis key per request: every change stores a new random version there
# once it commits (inference.signals, and the services that write with .update()). The copy is never
# used inside a transaction, where what it read could still be rolled back, and is reread at least
# every CATALOG_MAX_AGE_SECONDS in case a write slipped past the signals.

CATALOG_VERSION_KEY = "parley:inference:catalog-version"
CATALOG_MAX_AGE_SECONDS = 30.0


@dataclass(frozen=True)
class _Catalog:
    version: str
    loaded_at: float
    specs: dict[str, ModelSpec]  # with access_teams prefetched
    routes: dict[str, tuple[Route, list[ModelSpec]]]  # alias: the route and its specs in order


_catalog: _Catalog | None = None
_catalog_lock = threading.Lock()


# The version and its bump come from common.versioned; the copy itself is one snapshot of everything.
CATALOG = VersionedCache(CATALOG_VERSION_KEY, max_age=CATALOG_MAX_AGE_SECONDS)


def catalog_version() -> str | None:
    """The catalog's current version (made on first use), or None when Redis can't say."""
    return CATALOG.version()


def _catalog_load(version: str) -> _Catalog:
    specs = {spec.name: spec for spec in ModelSpec.objects.prefetch_related("access_teams")}
    by_id = {spec.pk: spec for spec in specs.values()}
    routes = {}
    for route in Route.objects.prefetch_related("access_teams", "entries"):
        entries = sorted(route.entries.all(), key=lambda entry: (entry.position, entry.pk))
        routes[route.alias] = (route, [by_id[entry.spec_id] for entry in entries if entry.spec_id in by_id])
    return _Catalog(version=version, loaded_at=time.monotonic(), specs=specs, routes=routes)


def _catalog_current() -> _Catalog | None:
    """This process's copy of the catalog, reread if it changed; None inside a transaction."""
    global _catalog
    if connection.in_atomic_block:
        return None
    version = catalog_version()  # before reading: a change made meanwhile bumps it again
    if version is None:
        return None
    if _catalog_fresh(_catalog, version):
        return _catalog
    with _catalog_lock:  # one reload at a time; the threads that waited use its result
        if not _catalog_fresh(_catalog, version):
            _catalog = _catalog_load(version)
        return _catalog


def _catalog_fresh(catalog: _Catalog | None, version: str) -> bool:
    return (catalog is not None and catalog.version == version
            and time.monotonic() - catalog.loaded_at < CATALOG_MAX_AGE_SECONDS)


def _spec_by_name(name: str) -> ModelSpec | None:
    catalog = _catalog_current()
    if catalog is not None:
        return catalog.specs.get(name)
    return ModelSpec.objects.filter(name=name).prefetch_related("access_teams").first()


def _route_with_specs(alias: str) -> tuple[Route, list[ModelSpec]] | None:
    catalog = _catalog_current()
    if catalog is not None:
        return catalog.routes.get(alias)
    route = Route.objects.filter(alias=alias).prefetch_related("access_teams", "entries__spec__access_teams").first()
    return None if route is None else (route, [entry.spec for entry in route.entries.all()])


def spec_get(*, name: str) -> ModelSpec | None:
    """One model by name, from the cached catalog (read only: the object is shared)."""
    return _spec_by_name(name)


def route_resolve(*, model: str, task: str) -> tuple[str, list[ModelSpec]]:
    """The route alias ('' for a bare model) and the ordered specs that may serve `model`."""
    spec = _spec_by_name(model)
    if spec is not None:
        specs, alias = [spec], ""
    else:
        found = _route_with_specs(model)
        if found is None:
            raise ApplicationError(
                f"The model `{model}` does not exist. GET /v1/models lists the models you can use.",
                code="model_not_found", status=404,
            )
        specs, alias = list(found[1]), found[0].alias
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


def models_usable(*, caller, task: str | None = None) -> list[ModelSpec]:
    """Enabled models the caller may use (their plan, teams or staff status; inference.access)."""
    from inference.access import denied

    specs = specs_enabled(task=task).prefetch_related("access_teams")
    return [spec for spec in specs if denied(caller, spec) is None]


def routes_usable(*, caller, task: str | None = None) -> list[Route]:
    """Routes the caller may use, each with at least one model they may use."""
    from inference.access import denied

    routes = routes_all().prefetch_related("access_teams", "entries__spec__access_teams")
    if task:
        routes = routes.filter(task=task)
    return [route for route in routes if denied(caller, route) is None
            and any(entry.spec.enabled and denied(caller, entry.spec) is None for entry in route.entries.all())]


def chat_routes_for_plan(*, plan: str) -> list[Route]:
    """The chat routes a user on `plan` may use (in no team, not staff): what a pricing table lists."""
    from inference.access import rule_denies

    def allowed(rule) -> bool:
        return rule_denies(rule, plan=plan, is_staff=False, team_ids=set) is None

    routes = routes_all().filter(task="chat").prefetch_related("access_teams", "entries__spec__access_teams")
    return [route for route in routes
            if allowed(route) and any(entry.spec.enabled and allowed(entry.spec) for entry in route.entries.all())]


def route_get(*, alias: str) -> Route | None:
    """A route with its access rule (for the access check), from the cached catalog."""
    found = _route_with_specs(alias)
    return found[0] if found else None


def _meterings(*, requests: bool) -> list[str]:
    from inference.serving import METERING

    return [kind for kind, meter in METERING.items() if (meter.get("requests", False) if requests else not meter)]


def _requests_count() -> Count:
    """The ledger rows that were requests of their own, as the plan counts them: not a chat turn's query
    embedding or summary, not a partial transcript, not an ingest batch. (Rows from before the ledger
    recorded how a call was metered count as requests, as they always did.)"""
    return Count("id", filter=Q(metering__in=_meterings(requests=True)) | Q(metering=""))


def usage_records_of_user(*, user: User, since: datetime | None = None, metered_only: bool = False,
                          ) -> QuerySet[UsageRecord]:
    """The user's ledger rows, newest first. `metered_only` leaves out what counts against nothing in a plan
    (partial transcripts while the user speaks, a voice turn's dozen or so; ingest batches): the lists a
    user reads."""
    records = UsageRecord.objects.filter(user=user).select_related("api_key")
    if since:
        records = records.filter(created_at__gte=since)
    if metered_only:
        records = records.exclude(metering__in=_meterings(requests=False))
    return records.order_by("-created_at", "-id")


def usage_summary_of_user(*, user: User, days: int = 30) -> list[dict]:
    """Per day and model: requests, tokens, audio seconds, characters and price; beside them what the same use
    would have cost on the task's reference API, and what it cost to run here (see savings_of_user)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        UsageRecord.objects.filter(user=user, created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day", "model_name", "task")
        .annotate(
            requests=_requests_count(), prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
            audio_seconds=Sum("audio_seconds"), characters=Sum("characters"), cost=Sum("cost"),
            duration_ms=Sum("duration_ms"),
        )
        .order_by("-day", "model_name")
    )
    references = reference_prices_default()
    out = []
    for row in rows:
        price = references.get(row["task"])
        out.append({**row, "reference": price.name if price else "",
                    "reference_cost": _reference_cost(row["task"], price, row).quantize(CENTS_4),
                    "compute_cost": _compute_cost(row["duration_ms"]).quantize(CENTS_4)})
    return out


def usage_tokens_today(*, user: User) -> int:
    today = date.today()
    total = UsageRecord.objects.filter(user=user, created_at__date=today).aggregate(
        tokens=Sum("prompt_tokens") + Sum("completion_tokens")
    )["tokens"]
    return int(total or 0)


# ----------------------------------------------------------------------------- the model picker

# A typical chat request, for "cost per request": a question with some history, and a paragraph back.
TYPICAL_PROMPT_TOKENS = 600
TYPICAL_COMPLETION_TOKENS = 300
_ENGINES = {"llama_cpp": "llama.cpp", "ctranslate2": "CTranslate2", "transformers": "Transformers",
            "openai_upstream": "upstream API"}


def _speed(spec: ModelSpec) -> str:
    bench = spec.bench or {}
    if not bench.get("tokens_per_s"):
        return "speed not measured yet (manage.py bench_inference)"
    ttft = f", first word in {bench['ttft_ms'] / 1000:.1f} s" if bench.get("ttft_ms") else ""
    return f"about {bench['tokens_per_s']:.0f} tokens/s{ttft}"


def _typical_cost(spec: ModelSpec) -> float:
    return float(spec.price_input_per_1k * TYPICAL_PROMPT_TOKENS / 1000
                 + spec.price_output_per_1k * TYPICAL_COMPLETION_TOKENS / 1000)


def chat_model_choices(*, caller) -> list[dict]:
    """The chat routes and models, each with what a person picks by: what it is, how fast it ran here, what a
    typical request costs, where it runs, and whether the caller's plan includes it (and if not, which does)."""
    from inference.access import denied, plans_named

    choices = []
    routes = routes_all().filter(task="chat").prefetch_related("access_teams", "entries__spec__access_teams")
    specs = list(specs_enabled(task="chat").prefetch_related("access_teams"))
    for item in [*routes, *specs]:
        is_route = isinstance(item, Route)
        chain = [entry.spec for entry in item.entries.all() if entry.spec.enabled] if is_route else [item]
        if not chain:
            continue
        usable = [spec for spec in chain if denied(caller, spec) is None]
        reason = denied(caller, item) or (None if usable else "plan")
        rule = item if is_route and denied(caller, item) else chain[0]
        ready = [spec for spec in (usable or chain) if spec.install_state == "ready"]
        first = (usable or chain)[0]
        serving = ready[0] if ready else first
        installing = ""
        if first.install_state == "installing":
            installing = f"installing, {first.install_progress:.0%}"
        elif first.install_state in ("failed", "skipped"):
            installing = "not installed here"
        label = (item.description.split(":")[0] if not is_route else "") or first.description.split(":")[0]
        choices.append({
            "id": item.alias if is_route else item.name,
            "kind": "route" if is_route else "model",
            "label": (f"{item.alias} — {label}" if is_route else label) or first.name,
            "capabilities": (f"{first.context_length // 1000}k context · "
                             f"{'runs upstream' if first.is_upstream else 'runs here'} on "
                             f"{_ENGINES.get(first.backend, first.backend)}"
                             + (" · falls back to " + ", ".join(s.name for s in chain[1:]) if len(chain) > 1 else "")),
            "description": first.description,
            "speed": _speed(serving),
            "cost_per_request": _typical_cost(serving),
            "engine": "upstream" if serving.is_upstream else "local",
            "allowed": reason is None,
            "reason": ("" if reason is None else "staff only" if reason == "staff"
                       else f"included in {plans_named(list(rule.access_plans or []))}"),
            "installing": installing,
        })
    return choices


# ----------------------------------------------------------------------------- savings


def _reference_cost(task: str, price, totals: dict) -> Decimal:
    million = Decimal(1_000_000)
    if price is None:
        return Decimal(0)
    if task == "chat":
        return (price.input_per_million * (totals["prompt_tokens"] or 0)
                + price.output_per_million * (totals["completion_tokens"] or 0)) / million
    if task == "embed":
        return price.input_per_million * (totals["prompt_tokens"] or 0) / million
    if task == "stt":
        return price.per_minute * Decimal(str(totals["audio_seconds"] or 0)) / 60
    if task == "tts":
        return price.per_million_characters * (totals["characters"] or 0) / million
    return Decimal(0)


def _compute_cost(duration_ms: float | None) -> Decimal:
    """The operator's cost of an hour of a model worker, spread over the time requests took in it."""
    hours = Decimal(str(duration_ms or 0)) / Decimal(3_600_000)
    return hours * Decimal(str(settings.PARLEY_COMPUTE_COST_PER_HOUR))


def _savings_sums() -> dict:
    return {"requests": _requests_count(), "prompt_tokens": Sum("prompt_tokens"),
            "completion_tokens": Sum("completion_tokens"), "audio_seconds": Sum("audio_seconds"),
            "characters": Sum("characters"), "duration_ms": Sum("duration_ms")}


def reference_prices_default() -> dict[str, ReferencePrice]:
    return {price.task: price for price in ReferencePrice.objects.filter(is_default=True).order_by("task")}


def savings_of_user(*, user: User, days: int = 30) -> dict:
    """What the user's use of the last `days` days would have cost on each task's reference API, beside
    what it cost to run here (compute time × PARLEY_COMPUTE_COST_PER_HOUR), per task and in total."""
    since = timezone.now() - timedelta(days=days)
    references = reference_prices_default()
    rows = (UsageRecord.objects.filter(user=user, created_at__gte=since, outcome=UsageRecord.Outcome.OK)
            .values("task").annotate(**_savings_sums()).order_by("task"))
    tasks = []
    for row in rows:
        price = references.get(row["task"])
        reference, compute = _reference_cost(row["task"], price, row), _compute_cost(row["duration_ms"])
        tasks.append({"task": row["task"], "requests": row["requests"], "reference": price.name if price else "",
                      "reference_cost": reference.quantize(CENTS_4), "compute_cost": compute.quantize(CENTS_4),
                      "saved": (reference - compute).quantize(CENTS_4)})
    reference_total = sum((t["reference_cost"] for t in tasks), Decimal(0))
    compute_total = sum((t["compute_cost"] for t in tasks), Decimal(0))
    return {"days": days, "tasks": tasks, "reference_cost": reference_total, "compute_cost": compute_total,
            "saved": reference_total - compute_total,
            "compute_cost_per_hour": Decimal(str(settings.PARLEY_COMPUTE_COST_PER_HOUR))}


def savings_by_day(*, days: int = 30) -> list[dict]:
    """For staff: every user's savings per day (reference cost, compute cost, saved), oldest first."""
    since = timezone.now() - timedelta(days=days)
    references = reference_prices_default()
    rows = (UsageRecord.objects.filter(created_at__gte=since, outcome=UsageRecord.Outcome.OK)
            .annotate(day=TruncDate("created_at")).values("day", "task").annotate(**_savings_sums())
            .order_by("day", "task"))
    by_day: dict[date, dict] = {}
    for row in rows:
        day = by_day.setdefault(row["day"], {"day": row["day"], "requests": 0, "reference_cost": Decimal(0),
                                             "compute_cost": Decimal(0)})
        day["requests"] += row["requests"]
        day["reference_cost"] += _reference_cost(row["task"], references.get(row["task"]), row)
        day["compute_cost"] += _compute_cost(row["duration_ms"])
    out = []
    for day in by_day.values():
        day["reference_cost"] = day["reference_cost"].quantize(CENTS_4)
        day["compute_cost"] = day["compute_cost"].quantize(CENTS_4)
        day["saved"] = day["reference_cost"] - day["compute_cost"]
        out.append(day)
    return out


def models_online() -> list[str]:
    """Names of the models some live gpu worker holds loaded now (from the workers' heartbeats)."""
    from common.heartbeat import workers_alive

    return sorted({name for worker in workers_alive() for name, state in (worker.get("models") or {}).items()
                   if state.get("state") == "loaded"})


def usage_totals_of_users(*, user_ids: list[int], days: int = 30) -> list[dict]:
    """Per user: requests, tokens, audio seconds, characters and cost over the last `days` (team usage)."""
    since = timezone.now() - timedelta(days=days)
    rows = (
        UsageRecord.objects.filter(user_id__in=user_ids, created_at__gte=since)
        .values("user_id")
        .annotate(
            requests=_requests_count(), prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
            audio_seconds=Sum("audio_seconds"), characters=Sum("characters"), cost=Sum("cost"),
        )
        .order_by("user_id")
    )
    return list(rows)


def usage_records_of_request(*, request_id: str) -> QuerySet[UsageRecord]:
    """Every ledger row of one request, oldest first: one per attempt (a fallback's carry `<request_id>-<n>`)."""
    from django.db.models import Q

    return UsageRecord.objects.filter(Q(request_id=request_id) | Q(request_id__startswith=f"{request_id}-")).order_by(
        "created_at", "id")
