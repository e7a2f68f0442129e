"""Failed log-ins: a stranger can't lock a victim out, repeat offenders wait longer each time, and
behind a trusted proxy each client has its own per-address limit.

allauth's limits are switched off in test settings; these tests switch on the production ones.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlencode

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.cache import cache

from accounts.tests.factories import PASSWORD, user_make
from config.settings import base

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("socket_tasks_reaped")]

ATTACKER, VICTIM_HOME = "203.0.113.9", "198.51.100.7"


@pytest.fixture(autouse=True)
def production_limits(settings):
    settings.ACCOUNT_RATE_LIMITS = base.ACCOUNT_RATE_LIMITS
    cache.clear()
    yield
    cache.clear()


def _log_in(client, email: str, password: str, ip: str):
    return client.post("/accounts/login/", {"login": email, "password": password}, REMOTE_ADDR=ip)


def _logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"].endswith("/app/")


def test_a_stranger_cannot_lock_the_victim_out(client, django_user_model):
    victim = user_make(email="victim@example.com")

    for _ in range(12):
        _log_in(client, victim.email, "wrong password", ATTACKER)
    locked = _log_in(client, victim.email, PASSWORD, ATTACKER)
    at_home = _log_in(client, victim.email, PASSWORD, VICTIM_HOME)

    assert not _logged_in(locked)
    assert "Too many failed log-ins" in locked.content.decode()
    assert _logged_in(at_home)


def test_the_wait_doubles_for_each_further_failure(client):
    from accounts.login_limits import FREE_FAILURES, login_failure_record, login_wait_seconds

    email = "rosa@example.com"
    waits = [login_failure_record(email=email, ip=ATTACKER) for _ in range(FREE_FAILURES + 8)]

    assert waits[:FREE_FAILURES - 1] == [0] * (FREE_FAILURES - 1)
    assert waits[FREE_FAILURES - 1:FREE_FAILURES + 3] == [60, 120, 240, 480]
    assert waits[-1] == 3600  # capped at an hour
    assert login_wait_seconds(email=email, ip=ATTACKER) > 3500
    assert login_wait_seconds(email=email, ip=VICTIM_HOME) == 0
    assert login_wait_seconds(email="someone.else@example.com", ip=ATTACKER) == 0


def test_a_success_clears_the_failures_of_that_place(client):
    from accounts.login_limits import FREE_FAILURES, login_wait_seconds

    user = user_make(email="forgetful@example.com")
    for _ in range(FREE_FAILURES - 1):
        _log_in(client, user.email, "wrong password", VICTIM_HOME)

    assert _logged_in(_log_in(client, user.email, PASSWORD, VICTIM_HOME))
    assert login_wait_seconds(email=user.email, ip=VICTIM_HOME) == 0


# --------------------------------------------------------------------------- through the ASGI app


async def _asgi(method: str, path: str, *, peer: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
                ) -> tuple[int, dict[bytes, list[bytes]], bytes]:
    from config.asgi import application

    scope = {"type": "http", "http_version": "1.1", "method": method, "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "client": (peer, 40000),
             "server": ("127.0.0.1", 8000), "headers": [(b"host", b"localhost"), *headers]}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(timeout=30)
    chunks = []
    while True:
        message = await communicator.receive_output(timeout=30)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait()
    found: dict[bytes, list[bytes]] = {}
    for name, value in start["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return start["status"], found, b"".join(chunks)


async def _failed_logins_from(clients: list[str], *, peer: str) -> list[str]:
    """Each client (an X-Forwarded-For value) tries a wrong password once through the proxy."""
    status, headers, body = await _asgi("GET", "/accounts/login/", peer=peer, headers=[])
    cookie = next(c.split(b";")[0] for c in headers[b"set-cookie"] if c.startswith(b"csrftoken="))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    outcomes = []
    for number, client_ip in enumerate(clients):
        form = urlencode({"csrfmiddlewaretoken": token, "login": f"user{number}@example.com",
                          "password": "wrong password"}).encode()
        _, _, page = await _asgi("POST", "/accounts/login/", peer=peer, body=form, headers=[
            (b"cookie", cookie), (b"content-type", b"application/x-www-form-urlencoded"),
            (b"x-forwarded-for", client_ip.encode())])
        outcomes.append("limited" if b"Too many failed login attempts" in page else "refused")
    return outcomes


@pytest.mark.django_db(transaction=True)
async def test_behind_a_trusted_proxy_each_client_has_its_own_limit(settings):
    settings.PARLEY_TRUSTED_PROXY_NETWORKS = (ipaddress.ip_network("10.0.0.5/32"),)
    clients = [f"203.0.113.{n}" for n in range(1, 13)]

    outcomes = await _failed_logins_from(clients, peer="10.0.0.5")

    assert outcomes == ["refused"] * 12  # twelve people, one wrong password each


@pytest.mark.django_db(transaction=True)
async def test_a_client_cannot_pick_its_address_through_the_header(settings):
    settings.PARLEY_TRUSTED_PROXY_NETWORKS = (ipaddress.ip_network("10.0.0.5/32"),)
    # One client writes a new address in front each time; the proxy appends the real one.
    spoofed = [f"198.51.100.{n}, 203.0.113.50" for n in range(1, 13)]

    outcomes = await _failed_logins_from(spoofed, peer="10.0.0.5")

    assert outcomes[:10] == ["refused"] * 10 and outcomes[10:] == ["limited"] * 2


@pytest.mark.django_db(transaction=True)
async def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.PARLEY_TRUSTED_PROXY_NETWORKS = ()
    clients = [f"203.0.113.{n}" for n in range(1, 13)]

    outcomes = await _failed_logins_from(clients, peer="198.51.100.200")

    assert outcomes[10:] == ["limited"] * 2
