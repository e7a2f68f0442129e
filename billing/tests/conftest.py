"""Billing's fixtures: the localstripe stand-in (one per session, wiped before each test) and the
dj-stripe rows local mode needs. Tests assert against the stand-in's state, never against mocks."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import stripe
from django.conf import settings

from billing.clock import clock_reset
from config import services

BASE_DIR = Path(__file__).resolve().parents[2]


class StandIn:
    """Reads localstripe's state over its API."""

    def __init__(self, url: str):
        self.url = url

    def payment_intents(self) -> list[dict]:
        return [pi.to_dict() for pi in stripe.PaymentIntent.list(
            api_key=settings.STRIPE_SECRET_KEY, limit=100).auto_paging_iter()]

    def succeeded(self) -> list[dict]:
        return [pi for pi in self.payment_intents() if pi["status"] == "succeeded"]

    def reset(self) -> None:
        requests.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()
        # Webhook registrations live outside the data; point ours at a closed port.
        requests.post(f"{self.url}/_config/webhooks/parley", data={"url": "http://127.0.0.1:9/", "secret": "x"},
                      timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def localstripe_server(tmp_path_factory) -> Iterator[StandIn]:
    url = settings.STRIPE_API_BASE
    port = int(url.rsplit(":", 1)[1])
    data_dir = tmp_path_factory.mktemp("localstripe")
    log = data_dir / "localstripe.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "billing.localstripe_server", "--port", str(port), "--data-dir", str(data_dir),
             "--from-scratch", "--quiet"],
            cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not services.port_in_use(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"localstripe did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield StandIn(url)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def stand_in(localstripe_server) -> Iterator[StandIn]:
    """A wiped stand-in and a billing clock at real time, for each test."""
    localstripe_server.reset()
    clock_reset()
    yield localstripe_server
    clock_reset()


@pytest.fixture
def djstripe_local(db, stand_in):
    """The Account, APIKey and WebhookEndpoint rows dj-stripe needs (local mode setup)."""
    from billing.services import stripe_local_setup

    return stripe_local_setup(site_url="http://testserver", register=False)
