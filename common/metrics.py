"""Prometheus metrics that describe the whole deployment, not one web process.

/metrics is served by every Daphne replica, but queues, workers, ingest and charges live in
Redis, Celery workers and PostgreSQL. So these are read at scrape time:
- queue depth per Celery queue and live workers per queue, from Redis (heartbeats);
- counters that worker processes bump in a Redis hash (`counter_add`), since a Celery worker
  serves no /metrics of its own;
- product analytics for the last complete hour (events, their 4-week baseline, the 5xx share,
  active alerts), read from PostgreSQL through onboarding's selectors;
- each app may register a collector of its own (billing reads its ledger).

Every replica exports the same values for these, so dashboards aggregate them with `max`,
never `sum`. A failing read drops that family from the scrape (and logs why) rather than
failing /metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from common.heartbeat import workers_alive
from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

COUNTERS_KEY = "parley:metrics:counters"
# Counters bumped by worker processes: name -> (help, the label sets always exported, even at 0).
REDIS_COUNTERS: dict[str, tuple[str, list[dict[str, str]]]] = {
    "parley_ingest_passages": ("Passages stored by document ingest", [{}]),
    "parley_ingest_documents": ("Documents whose ingest ended, by outcome",
                                [{"outcome": "ready"}, {"outcome": "failed"}]),
}
# Product analytics for the last complete hour: gauge name -> (help, key of analytics_gauges()).
ANALYTICS_GAUGES: dict[str, tuple[str, str]] = {
    "parley_analytics_events_last_hour": ("Analytics events stored in the last complete hour", "events"),
    "parley_analytics_events_baseline_last_hour": (
        "Mean analytics events in the same hour over the previous 4 weeks", "baseline"),
    "parley_analytics_error_rate_last_hour": (
        "Share of requests answered with a 5xx in the last complete hour (0 to 1)", "error_rate"),
}
# The fixed queues (config/settings/base.py); gpu workers add `<gpu queue>.<model>` ones.
BASE_QUEUES = ("default", "billing", "gpu")
# Celery's Redis transport keeps priority levels in sibling lists named `<queue>\x06\x16<n>`.
_PRIORITY_SEPARATOR = "\x06\x16"


def counter_add(name: str, amount: float = 1, **labels: str) -> None:
    """Add to a deployment-wide counter (one Redis HINCRBYFLOAT); never raises into the caller."""
    field = _field(name, labels)
    try:
        redis_client().hincrbyfloat(COUNTERS_KEY, field, amount)
    except Exception:  # a lost metric must not fail the work it describes
        logger.warning("could not add to counter %s", field, exc_info=True)


def _field(name: str, labels: dict[str, str]) -> str:
    return name + "".join(f"|{key}={value}" for key, value in sorted(labels.items()))


def _parse_field(field: str) -> tuple[str, dict[str, str]]:
    name, *pairs = field.split("|")
    return name, dict(pair.split("=", 1) for pair in pairs)


def _queue_names(workers: list[dict]) -> list[str]:
    """The fixed queues, every queue a live worker consumes, and the per-model queues of gpu workers."""
    gpu_queue = settings.PARLEY_GPU_QUEUE
    names = set(BASE_QUEUES) | {gpu_queue}
    for worker in workers:
        names.update(worker.get("queues", []))
        if gpu_queue not in worker.get("queues", []):
            continue
        for model, state in (worker.get("models") or {}).items():
            if state.get("state") in ("loaded", "loading"):
                names.add(f"{gpu_queue}.{model}")
    return sorted(names)


class StackCollector(Collector):
    def describe(self) -> Iterable:
        """Names only: without describe(), registering would run collect() (Redis) in every process at start."""
        yield GaugeMetricFamily("parley_workers_alive", "", labels=["queue"])
        yield GaugeMetricFamily("parley_worker_heartbeat_age_seconds", "", labels=["hostname"])
        yield GaugeMetricFamily("parley_worker_models_loaded", "", labels=["hostname", "model"])
        yield GaugeMetricFamily("parley_queue_depth", "", labels=["queue"])
        for name in REDIS_COUNTERS:
            yield CounterMetricFamily(name, "")
        for name in ANALYTICS_GAUGES:
            yield GaugeMetricFamily(name, "")
        yield GaugeMetricFamily("parley_analytics_alerts_active", "", labels=["kind"])

    def collect(self) -> Iterable:
        # PostgreSQL first: a Redis outage must not also hide the analytics figures.
        yield from self._analytics()
        try:
            workers = workers_alive()
        except Exception:
            logger.warning("metrics: could not read worker heartbeats", exc_info=True)
            return
        yield from self._workers(workers)
        try:
            yield from self._queues(workers)
            yield from self._counters()
        except Exception:
            logger.warning("metrics: could not read queues or counters from Redis", exc_info=True)

    def _analytics(self) -> Iterable:
        """Product analytics for the operations issue's alert rules (onboarding/services/alerts.py computes
        the same figures for its own mail): five small range counts and two tiny tables."""
        from onboarding.selectors.alerts import analytics_gauges

        try:
            gauges = analytics_gauges()
        except Exception:
            logger.warning("metrics: could not read the analytics figures", exc_info=True)
            return
        for name, (help_text, key) in ANALYTICS_GAUGES.items():
            yield GaugeMetricFamily(name, help_text, value=gauges[key])
        active = GaugeMetricFamily("parley_analytics_alerts_active", "Analytics alerts raised for the last two "
                                   "complete hours, per kind (traffic_spike, error_rate)", labels=["kind"])
        for kind, count in sorted(gauges["alerts"].items()):
            active.add_metric([kind], count)
        yield active

    def _workers(self, workers: list[dict]) -> Iterable:
        alive = GaugeMetricFamily("parley_workers_alive", "Celery workers with a live heartbeat, per queue",
                                  labels=["queue"])
        per_queue = {queue: 0 for queue in BASE_QUEUES}
        for worker in workers:
            for queue in worker.get("queues", []):
                per_queue[queue] = per_queue.get(queue, 0) + 1
        for queue, count in sorted(per_queue.items()):
            alive.add_metric([queue], count)
        yield alive
        age = GaugeMetricFamily("parley_worker_heartbeat_age_seconds", "Seconds since each live worker's last "
                                "heartbeat (a worker is gone when its key expires)", labels=["hostname"])
        now = time.time()
        for worker in workers:
            age.add_metric([worker["hostname"]], max(0.0, now - float(worker.get("last_seen", now))))
        yield age
        models = GaugeMetricFamily("parley_worker_models_loaded", "Models loaded per gpu worker",
                                   labels=["hostname", "model"])
        for worker in workers:
            for model, state in (worker.get("models") or {}).items():
                models.add_metric([worker["hostname"], model], 1.0 if state.get("state") == "loaded" else 0.0)
        yield models

    def _queues(self, workers: list[dict]) -> Iterable:
        depth = GaugeMetricFamily("parley_queue_depth", "Tasks waiting in each Celery queue (not yet taken)",
                                  labels=["queue"])
        client = redis_client()
        names = _queue_names(workers)
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
            for priority in (3, 6, 9):
                pipe.llen(f"{name}{_PRIORITY_SEPARATOR}{priority}")
        lengths = pipe.execute()
        for index, name in enumerate(names):
            depth.add_metric([name], sum(lengths[index * 4:index * 4 + 4]))
        yield depth

    def _counters(self) -> Iterable:
        stored = redis_client().hgetall(COUNTERS_KEY)
        values: dict[str, dict[tuple, float]] = {name: {} for name in REDIS_COUNTERS}
        for name, (_, label_sets) in REDIS_COUNTERS.items():
            for labels in label_sets:
                values[name][tuple(sorted(labels.items()))] = 0.0
        for field, raw in stored.items():
            name, labels = _parse_field(field)
            if name in values:
                values[name][tuple(sorted(labels.items()))] = float(raw)
        for name, series in values.items():
            label_names = sorted({key for labels in series for key, _ in labels})
            family = CounterMetricFamily(name, REDIS_COUNTERS[name][0], labels=label_names)
            for labels, value in sorted(series.items()):
                as_dict = dict(labels)
                family.add_metric([as_dict.get(key, "") for key in label_names], value)
            yield family


def collector_register(collector: Collector) -> None:
    """Register once per process (AppConfig.ready may run again in some test set-ups)."""
    try:
        REGISTRY.register(collector)
    except ValueError:
        pass  # already registered in this process
