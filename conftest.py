"""Fixtures shared by every test: embedded services, a live Celery worker, a live Daphne,
and headless Chromium. Everything here is real; nothing inside the process is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio

from common.stack import daphne_start, process_stop, wait_for, worker_start
from config import services

BASE_DIR = Path(__file__).resolve().parent
# Start (or find) the embedded services before Django reads its settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
services.up(quiet=True)


def _database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for child processes that points at the test database."""
    user = quote(settings_dict["USER"] or "")
    password = quote(settings_dict.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else f"{user}@"
    host = settings_dict.get("HOST") or settings_dict.get("OPTIONS", {}).get("host", "")
    port = settings_dict.get("PORT") or settings_dict.get("OPTIONS", {}).get("port", "")
    name = settings_dict["NAME"]
    if host.startswith("/"):  # a Unix socket directory goes in the query string
        query = f"?host={host}" + (f"&port={port}" if port else "")
        return f"postgres://{auth}/{name}{query}"
    return f"postgres://{auth}{host}{':' + str(port) if port else ''}/{name}"


@pytest.fixture(scope="session")
def child_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    """Environment for worker and server subprocesses: the test database and test Redis db."""
    from django.conf import settings
    from django.db import connection

    with django_db_blocker.unblock():
        url = _database_url(connection.settings_dict)
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=url,
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        # Tests register models per test (transactional tests empty the tables), so the worker
        # loads each model on first use rather than at start.
        PARLEY_WORKER_MODELS="",
    )
    return env


@pytest.fixture(scope="session", autouse=True)
def _flush_test_redis() -> None:
    """The suite owns its Redis db; start from an empty one so no old heartbeat or queue lingers."""
    from common.redis_connection import redis_client

    redis_client().flushdb()


_config: dict[str, pytest.Config] = {}


def pytest_configure(config: pytest.Config) -> None:
    _config["config"] = config


def _say(text: str) -> None:
    """A line on the terminal now, past pytest's output capture (which also takes sys.__stderr__'s fd)."""
    capture = _config["config"].pluginmanager.getplugin("capturemanager") if _config else None
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(text, file=sys.__stderr__, flush=True)


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """A new in-process channel layer per test. Each async test runs on a loop of its own, and the cached
    Redis layer keeps per-loop receive state (its receive lock, buffers and count); nothing of one test's
    loop should reach the next (channels#876 describes the clash)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest_asyncio.fixture
async def socket_tasks_reaped() -> AsyncIterator[None]:
    """For tests that drive consumers in-process (Channels' communicators): after the test, cancel what its
    consumers left running and give them 5 s to stop. A task still running then is printed with its stack
    and unregistered, so the closing event loop doesn't wait for it for ever. Now and then a consumer's
    channel-layer receive (channels_redis) ignored its cancellation, and pytest-asyncio's teardown hung."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    if not left:
        return
    _, stuck = await asyncio.wait(left, timeout=5)
    for task in stuck:
        _say(f"\nparley: a task ignored its cancellation for 5 s; left behind: {task!r}\n{_stack(task)}")
        asyncio.tasks._unregister_task(task)


def _stack(task: asyncio.Task) -> str:
    out = io.StringIO()
    task.print_stack(file=out)
    return out.getvalue()


@pytest.fixture(scope="session")
def celery_worker(child_env, tmp_path_factory) -> Iterator[dict[str, object]]:
    """A real Celery worker process consuming every queue, against the test database."""
    from common.heartbeat import workers_alive

    log = tmp_path_factory.mktemp("worker") / "worker.log"
    hostname = f"test-{os.getpid()}@localhost"
    process = worker_start(env=child_env, queues="default,billing,gpu", hostname=hostname, log=log)
    try:
        wait_for(lambda: any(w["hostname"] == hostname for w in workers_alive()),
                 timeout=60, what="the Celery worker", log=log)
        yield {"hostname": hostname, "process": process, "log": log}
    finally:
        process_stop(process)


@pytest.fixture
def bundled_models(db) -> list:
    """The prepared bundled models and their routes, registered in the test database.

    Function-scoped because transactional tests empty every table afterwards; registering
    is a handful of upserts. The weights themselves are prepared once by `make test`.
    """
    from chat.seed import assistants_seed
    from inference.services import bundled_models_register

    assistants_seed()  # seeded by a migration, but transactional tests empty the table
    specs = bundled_models_register()
    if not specs:
        pytest.fail("No bundled model is prepared; run `python manage.py models_install` (make test does).")
    return specs


# /metrics of the live Daphne answers this bearer token (tests/test_prometheus.py scrapes it).
LIVE_METRICS_TOKEN = "live-daphne-metrics-token-for-tests"


@pytest.fixture(scope="session")
def live_daphne(child_env, tmp_path_factory) -> Iterator[dict[str, object]]:
    """Daphne serving config.asgi on a free loopback port; its stdout (console email) is kept."""
    port = services._free_port()
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    # Loopback is the trusted proxy, as nginx on the same host would be (tests/test_nginx.py puts one
    # in front); requests without forwarded headers are unaffected.
    env = dict(child_env, ALLOWED_HOSTS="127.0.0.1,localhost", PARLEY_METRICS_TOKEN=LIVE_METRICS_TOKEN,
               PARLEY_TRUSTED_PROXIES="127.0.0.1")
    process = daphne_start(env=env, port=port, log=log)
    try:
        wait_for(lambda: services.port_in_use(port), timeout=60, what="Daphne", log=log)
        yield {"url": f"http://127.0.0.1:{port}", "log": log, "process": process,
               "metrics_token": LIVE_METRICS_TOKEN}
    finally:
        process_stop(process)


def _flush_retrying_on_deadlock() -> None:
    """A transactional test's teardown empties every table with one TRUNCATE. A worker process still writing
    the usage row of a reply the test just cancelled can take its locks in the other order; PostgreSQL then
    kills one side as a deadlock, and when that is the flush the next test starts dirty. The flush is one
    transaction, so running it again is safe: retry it a few times. Once it is done, the processes' cached
    copies (common.versioned: the model catalog, API keys, plans) are marked old."""
    import time

    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    teardown = TransactionTestCase._fixture_teardown

    def retrying(self) -> None:
        import accounts.selectors  # noqa: F401 - each registers its cache (common.versioned)
        import billing.selectors  # noqa: F401
        import inference.selectors  # noqa: F401
        from common.versioned import versioned_all_bump

        for attempt in range(5):
            try:
                teardown(self)
                # The flush emptied the tables without signals: every process's cached copies are old.
                versioned_all_bump()
                return
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__) or attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))

    TransactionTestCase._fixture_teardown = retrying


_flush_retrying_on_deadlock()


# A test still running after this long is probably hung: its pending asyncio tasks are printed with
# their stacks (faulthandler_timeout in pyproject.toml prints the threads a little later).
HUNG_TEST_SECONDS = float(os.environ.get("PARLEY_TEST_HUNG_SECONDS", "420"))


def _pending_tasks_print(nodeid: str) -> None:
    tasks = [obj for obj in gc.get_objects() if isinstance(obj, asyncio.Task) and not obj.done()]
    _say(f"\n=== {nodeid} still running after {HUNG_TEST_SECONDS:.0f} s; pending asyncio tasks:\n"
         + "".join(f"--- {task!r}\n{_stack(task)}" for task in tasks))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    timer = threading.Timer(HUNG_TEST_SECONDS, _pending_tasks_print, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# Tests that load the bundled chat models, through a worker, Daphne or a browser (or are marked `engine`:
# they run or inspect llama-server in this process). On a fresh machine llama-server is still compiling
# (in the background, `make test` starts it with the install) when pytest starts: these wait for it, and
# run after every test that doesn't, so the build overlaps them. `bundled_models` alone does not wait:
# registering picks the engine per test (its rows are rolled back or emptied after it), and a test with no
# worker runs no chat model.
ENGINE_FIXTURES = frozenset({"celery_worker", "live_daphne", "llama_server_binary", "chromium"})


def _needs_engine(item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return bool(ENGINE_FIXTURES & fixtures) or item.get_closest_marker("engine") is not None


def _database_kind(item) -> int:
    """pytest-django's order: 0 uses the database in a transaction, 1 is transactional (its teardown empties
    every table, migration-seeded rows included, so no test of kind 0 may follow it), 2 has no database."""
    fixtures = set(getattr(item, "fixturenames", ()))
    marker = item.get_closest_marker("django_db")
    if (marker is not None and (marker.kwargs.get("transaction") or marker.kwargs.get("reset_sequences"))) \
            or {"transactional_db", "live_server"} & fixtures:
        return 1
    return 0 if marker is not None or "db" in fixtures else 2


def _phase(item) -> int:
    if item.get_closest_marker("browser") is not None:
        return 9  # last: Playwright's sync API holds an event loop that async tests can't share
    kind, engine = _database_kind(item), _needs_engine(item)
    if kind == 2 and not engine:
        return 0  # no database and no model: first, while llama-server may still be compiling
    return {0: 1, 1: 3, 2: 5}[kind] + engine


def pytest_collection_modifyitems(config, items) -> None:
    """Run order: tests with neither a database nor a model, then by pytest-django's kinds (in a
    transaction, transactional, no database), each with the tests that need no model before those
    that wait for llama-server; browser tests last. The sort is stable."""
    items.sort(key=_phase)


_engine = {"checked": False}


def _engine_wait() -> None:
    """Once per run: take the llama-server build from the cache, waiting for the background build if it is
    still going (or building it here when nothing is). Without it the chat models run on CTranslate2, which
    the llama-server tests then report."""
    if _engine["checked"]:
        return
    _engine["checked"] = True
    from inference.engines import EngineInstallError, llama_server_install, llama_server_path

    if llama_server_path() is not None:
        return
    started = time.monotonic()
    _say("\nparley: waiting for the llama-server build before the tests that load models "
         "(it started in the background with the install)")
    try:
        path = llama_server_install()
    except EngineInstallError as exc:
        _say(f"parley: llama-server is not built ({exc}); chat models run on CTranslate2")
        return
    _say(f"parley: llama-server ready after waiting {time.monotonic() - started:.0f} s: {path}")


@pytest.hookimpl(tryfirst=True)  # before the item's fixtures start a worker or register the models
def pytest_runtest_setup(item) -> None:
    if _needs_engine(item):
        _engine_wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is not installed; `make test` installs it (apt-get install chromium).")
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls made by the
    # test itself are still synchronous and safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
            )
            yield browser
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed  # read by `page` to keep a screenshot of what the test saw
    return report


@pytest.fixture
def page(chromium, request) -> Iterator[object]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    if getattr(request.node, "call_failed", False):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid)[-150:]
        with contextlib.suppress(Exception):
            page.screenshot(path=str(BASE_DIR / "test-results" / "failed" / f"{name}.png"), full_page=True)
    context.close()
