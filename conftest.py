"""Fixtures shared by every test: embedded services, a live Celery worker, a live Daphne,
and headless Chromium. Everything here is real; nothing inside the process is mocked."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

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
    copies of the model catalog are marked old (inference.selectors)."""
    import time

    from django.core.management.base import CommandError
    from django.test import TransactionTestCase

    teardown = TransactionTestCase._fixture_teardown

    def retrying(self) -> None:
        from inference.services import _catalog_version_bump

        for attempt in range(5):
            try:
                teardown(self)
                # The flush emptied the model catalog without signals: every process's copy is old.
                _catalog_version_bump()
                return
            except CommandError as exc:
                if "deadlock" not in str(exc.__cause__) or attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))

    TransactionTestCase._fixture_teardown = retrying


_flush_retrying_on_deadlock()


def pytest_collection_modifyitems(config, items) -> None:
    """Browser tests last: Playwright's sync API holds an event loop that async tests can't share."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


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


@pytest.fixture
def page(chromium) -> Iterator[object]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()
