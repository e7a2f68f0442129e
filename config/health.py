"""Liveness (/healthz) and readiness (/readyz) probes.

/readyz checks each part on its own so an operator sees which one is down and how slow each
is; any failing part turns the whole answer into a 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

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
    return JsonResponse({"status": "ok" if ready else "error", "checks": checks}, status=200 if ready else 503)
