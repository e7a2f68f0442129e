"""Liveness (/healthz) and readiness (/readyz) probes, and Prometheus metrics (/metrics).

/readyz checks each part on its own so an operator sees which one is down and how slow each
is; any failing part turns the whole answer into a 503. Anyone may ask whether Parley is ready;
the detail (versions, worker host names, errors) and /metrics, hundreds of kilobytes of
counters about who uses what, are for staff and for a scraper holding PARLEY_METRICS_TOKEN.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django_prometheus.exports import ExportToDjangoView

from common.heartbeat import workers_alive
from common.redis_connection import redis_client

# The queues that must each have at least one live worker for Parley to be ready.
REQUIRED_QUEUES = ("default", "billing", "gpu")


def _check_postgres() -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        return {"version": cursor.fetchone()[0]}


def _check_pgvector() -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the vector extension is not installed; run `python manage.py migrate`")
    return {"version": row[0]}


def _check_redis() -> dict[str, object]:
    redis_client().ping()
    return {}


def _check_workers() -> dict[str, object]:
    workers = workers_alive()
    queues: dict[str, list[str]] = {queue: [] for queue in REQUIRED_QUEUES}
    for worker in workers:
        for queue in worker["queues"]:
            queues.setdefault(queue, []).append(worker["hostname"])
    missing = [queue for queue in REQUIRED_QUEUES if not queues[queue]]
    if missing:
        raise RuntimeError(f"no live Celery worker consumes queue(s): {', '.join(missing)}")
    return {"queues": queues}


def _run(check: Callable[[], dict[str, object]]) -> dict[str, object]:
    started = time.perf_counter()
    try:
        result: dict[str, object] = {"status": "ok", **check()}
    except Exception as exc:  # noqa: BLE001 - a probe reports any failure, it never raises
        result = {"status": "error", "error": str(exc) or exc.__class__.__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def internals_allowed(request: HttpRequest) -> bool:
    """Staff, or `Authorization: Bearer <PARLEY_METRICS_TOKEN>` (compared in constant time)."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return True
    token = settings.PARLEY_METRICS_TOKEN
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "postgres": _run(_check_postgres),
        "pgvector": _run(_check_pgvector),
        "redis": _run(_check_redis),
        "celery": _run(_check_workers),
    }
    ready = all(check["status"] == "ok" for check in checks.values())
    body: dict[str, object] = {"status": "ok" if ready else "error"}
    if internals_allowed(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ready else 503)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not internals_allowed(request):
        response = JsonResponse({"error": {"message": "Metrics are for staff, or send `Authorization: Bearer "
                                                      "<PARLEY_METRICS_TOKEN>`.", "code": "not_authenticated"}},
                                status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return ExportToDjangoView(request)
