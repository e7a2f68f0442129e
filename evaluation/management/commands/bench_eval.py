"""Run S-7 against one or more models or routes and print the per-skill table and one JSON line per model.

Each model is a real run (stored like any other, so the evaluation page shows it): its items go through
inference's normal path to the gpu workers on this deployment's Redis. With no live gpu worker, one is started
for the bench and stopped after. Plans are not measured here (the bench user gets every model, unlimited).

    python manage.py bench_eval                              # chat-default, every S-7 item
    python manage.py bench_eval --model smollm2-135m --model qwen2.5-coder-0.5b
    python manage.py bench_eval --skills facts code --limit 3   # a quick look (not comparable: not every item)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import override_settings

from common.bench import as_json, table

BENCH_EMAIL = "bench-eval@parley.localhost"


class Command(BaseCommand):
    help = "Run the S-7 evaluation on models or routes and print scores (95% Wilson CI), speed, memory and cost."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", action="append", dest="models",
                            help="A chat model or route; repeat for several (default: chat-default).")
        parser.add_argument("--skills", nargs="+", help="Only these skills (default: all seven).")
        parser.add_argument("--limit", type=int, help="At most this many items per skill.")
        parser.add_argument("--judge-model", default="", help="Optional judge model: adds a rubric score (labelled).")

    def handle(self, *args: object, models: list[str] | None, skills: list[str] | None, limit: int | None,
               judge_model: str, **options: object) -> None:
        from common.errors import ApplicationError
        from inference.services import bundled_models_register

        bundled_models_register()
        models = models or ["chat-default"]
        with override_settings(PARLEY_PLANS_ENFORCED=False), _gpu_worker(models, self.stderr.write):
            user = _bench_user()
            for model in models:
                try:
                    figures = self._run(user=user, model=model, skills=skills, limit=limit, judge_model=judge_model)
                except ApplicationError as exc:
                    raise CommandError(f"{model}: {exc.message}")
                self.stdout.write(table(_rows(figures)))
                self.stdout.write(as_json("eval", figures))

    def _run(self, *, user, model: str, skills: list[str] | None, limit: int | None, judge_model: str) -> dict:
        from evaluation.models import EvalResult, EvalRun
        from evaluation.services import evalrun_execute, evalrun_start

        run = evalrun_start(user=user, model=model, skills=skills, limit=limit, judge_model=judge_model,
                            enqueue=False)
        self.stderr.write(f"{model}: run #{run.pk}, {run.items_total} items")
        started = time.perf_counter()
        outcome = evalrun_execute(run_id=run.pk, budget_seconds=float("inf"))
        wall = time.perf_counter() - started
        run = EvalRun.objects.get(pk=run.pk)
        if outcome != "done":
            raise CommandError(f"{model}: the run ended {outcome}: {run.error}")
        for result in EvalResult.objects.filter(run=run, passed=False, error__gt=""):
            self.stderr.write(f"  {result.item_key}: {result.error}")
        requests = run.items_done or 1
        figures: dict[str, object] = {
            "model": model, "run_id": run.pk, "items": run.items_done, "wall_s": wall,
            "score": run.score, "score_ci_low": run.score_ci_low, "score_ci_high": run.score_ci_high,
            "ttft_p50_ms": run.ttft_p50_ms, "ttft_p95_ms": run.ttft_p95_ms, "tokens_per_s": run.tokens_per_s,
            "peak_memory_mb": run.peak_memory_mb, "cost": float(run.cost),
            "cost_per_1k_requests": float(run.cost) / requests * 1000, "answered_by": ",".join(run.answered_by),
        }
        if run.judge_model:
            figures["judge_score"] = run.judge_score
        for skill, score in run.scores.items():
            figures[f"{skill}_score"] = score["score"]
            figures[f"{skill}_ci"] = f"{score['ci_low']:.2f}-{score['ci_high']:.2f}"
            figures[f"{skill}_passed"] = f"{score['passed']}/{score['n']}"
        return figures


def _rows(figures: dict) -> list[tuple[str, object, str, str]]:
    from evaluation.s7 import SKILLS

    def value(key: str) -> object:
        found = figures.get(key)
        return "n/a" if found is None else found

    rows: list[tuple[str, object, str, str]] = [("model", figures["model"], "", f"run #{figures['run_id']}")]
    for skill in SKILLS:
        if f"{skill}_score" in figures:
            rows.append((f"{skill}", figures[f"{skill}_score"], "pass rate",
                         f"{figures[f'{skill}_passed']}, 95% CI {figures[f'{skill}_ci']}"))
    overall_ci = (f"95% CI {figures['score_ci_low']:.2f}-{figures['score_ci_high']:.2f}"
                  if figures["score"] is not None else "")
    rows += [
        ("overall", value("score"), "pass rate", overall_ci),
        ("judge (rubric, not pass/fail)", value("judge_score"), "0-1", "only with --judge-model"),
        ("TTFT p50", value("ttft_p50_ms"), "ms", "worker-measured"),
        ("TTFT p95", value("ttft_p95_ms"), "ms", ""),
        ("decode", value("tokens_per_s"), "tokens/s", "after the first token"),
        ("peak worker memory", value("peak_memory_mb"), "MB", "worker + children, or its heartbeat"),
        ("cost", figures["cost"], "USD", "from the usage ledger"),
        ("cost per 1k requests", figures["cost_per_1k_requests"], "USD", ""),
        ("items", figures["items"], "", f"{figures['wall_s']:.0f} s wall"),
    ]
    return [row for row in rows if not (row[0].startswith("judge") and "judge_score" not in figures)]


def _bench_user():
    from accounts.models import User
    from accounts.services import user_create

    return User.objects.filter(email=BENCH_EMAIL).first() or user_create(email=BENCH_EMAIL, is_staff=True)


def _running(worker: dict) -> bool:
    """A heartbeat outlives its worker by up to its TTL: on this host, check that the process is still there."""
    import socket

    import psutil

    if worker.get("host") != socket.gethostname():
        return True
    try:
        return psutil.Process(int(worker["pid"])).status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, ValueError):
        return False


class _gpu_worker:
    """Uses the deployment's live gpu workers; starts one for the bench's models when there is none."""

    def __init__(self, models: list[str], log) -> None:
        self.models, self.log, self.process = models, log, None

    def __enter__(self) -> _gpu_worker:
        from common.heartbeat import workers_alive
        from common.stack import wait_for, worker_start
        from inference.bench_stack import child_env
        from inference.selectors import route_resolve

        if any("gpu" in worker.get("queues", []) and _running(worker) for worker in workers_alive()):
            return self
        specs = sorted({spec.name for model in self.models for spec in route_resolve(model=model, task="chat")[1]})
        self.tmp = tempfile.TemporaryDirectory()
        log = Path(self.tmp.name) / "worker.log"
        hostname = f"bench-eval-{os.getpid()}@localhost"
        self.log(f"no gpu worker is running: starting one for {', '.join(specs)}")
        self.process = worker_start(env=child_env(PARLEY_WORKER_MODELS=",".join(specs)), queues="gpu",
                                    hostname=hostname, log=log)

        def loaded() -> bool:
            # Every model of the routes settled (a route's model that cannot load here is passed over, as in use).
            mine = [w for w in workers_alive() if w["hostname"] == hostname]
            states = [(mine[0].get("models", {}) if mine else {}).get(name, {}).get("state") for name in specs]
            return all(state in ("loaded", "failed") for state in states) and "loaded" in states

        try:
            wait_for(loaded, timeout=300, what="the bench's gpu worker", log=log)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        from common.stack import process_stop

        if self.process is not None:
            process_stop(self.process)
            self.tmp.cleanup()
