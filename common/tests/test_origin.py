"""WebSocket origins must match in scheme, host and port; trusted proxies may name the client."""

from __future__ import annotations

import ipaddress

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.tests.factories import user_make
from config.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("socket_tasks_reaped")]


async def _cookie() -> bytes:
    def login() -> str:
        client = Client()
        client.force_login(user_make())
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return f"{settings.SESSION_COOKIE_NAME}={await sync_to_async(login)()}".encode()


async def _connects(origin: bytes | None, *, host: bytes = b"localhost", extra: list | None = None,
                    scheme: str | None = None) -> bool:
    headers = [(b"host", host), (b"cookie", await _cookie()), *(extra or [])]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    if scheme:
        communicator.scope["scheme"] = scheme
    connected, _ = await communicator.connect()
    await communicator.disconnect()  # a refused socket's consumer also waits for the disconnect to end
    return connected


async def test_the_sites_own_origin_is_accepted():
    assert await _connects(b"http://localhost")
    assert await _connects(b"http://localhost:8000", host=b"localhost:8000")
    assert await _connects(b"https://localhost", scheme="wss")


@pytest.mark.parametrize(("origin", "host"), [
    (b"http://localhost:9999", b"localhost"),  # another port: another program on the machine
    (b"http://localhost:9999", b"localhost:8000"),
    (b"https://localhost", b"localhost"),  # an https page may not open a plain ws of another origin
    (b"http://evil.example", b"localhost"),
    (b"http://localhost.evil.example", b"localhost"),
    (b"null", b"localhost"),
    (b"", b"localhost"),
    (b"http://evil.example", b"evil.example"),  # the host itself is not one we serve
])
async def test_other_origins_are_refused(origin, host):
    assert not await _connects(origin, host=host)


async def test_a_missing_origin_is_refused():
    assert not await _connects(None)


async def test_a_plain_page_may_not_talk_to_a_secure_socket():
    assert not await _connects(b"http://localhost", scheme="wss")


async def test_csrf_trusted_origins_are_accepted_exactly(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.org"]

    assert await _connects(b"https://app.example.com")
    assert await _connects(b"https://chat.example.org")
    assert not await _connects(b"https://app.example.com:8443")
    assert not await _connects(b"http://app.example.com")
    assert not await _connects(b"https://example.org.evil.example")


async def test_behind_the_production_tls_proxy_the_https_origin_is_the_sites_own(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proto = [(b"x-forwarded-proto", b"https")]

    assert await _connects(b"https://localhost", extra=proto)
    assert not await _connects(b"http://localhost", extra=proto)


# --------------------------------------------------------------------------- trusted proxies

PROXY = (ipaddress.ip_network("10.0.0.5/32"),)


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("10.0.0.5", "203.0.113.7", "203.0.113.7"),
    # The client wrote its own X-Forwarded-For; the proxy appended the real address.
    ("10.0.0.5", "1.2.3.4, 203.0.113.7", "203.0.113.7"),
    # Not from the proxy: nothing in the header is believed.
    ("198.51.100.9", "203.0.113.7", "198.51.100.9"),
    ("10.0.0.5", "garbage, 203.0.113.7", "203.0.113.7"),
    ("10.0.0.5", "203.0.113.7, garbage", "10.0.0.5"),
    ("10.0.0.5", "2001:db8::1", "2001:db8::1"),
])
def test_the_client_is_the_rightmost_address_the_proxies_did_not_add(peer, forwarded, client):
    from common.proxy import client_from_forwarded

    assert client_from_forwarded(peer=peer, forwarded_for=forwarded, networks=PROXY) == client


async def _scope_seen(settings, *, peer: str, headers: list[tuple[bytes, bytes]], kind: str = "http") -> dict:
    from common.proxy import TrustedProxyMiddleware

    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    settings.PARLEY_TRUSTED_PROXY_NETWORKS = PROXY
    await TrustedProxyMiddleware(app)({"type": kind, "client": (peer, 5555), "scheme": "ws" if kind == "websocket"
                                       else "http", "headers": headers}, None, None)
    return seen


async def test_only_a_trusted_proxy_sets_the_client_and_scheme(settings):
    headers = [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.7"), (b"x-forwarded-proto", b"https")]

    from_proxy = await _scope_seen(settings, peer="10.0.0.5", headers=headers)
    socket = await _scope_seen(settings, peer="10.0.0.5", headers=headers, kind="websocket")
    direct = await _scope_seen(settings, peer="198.51.100.9", headers=headers)

    assert (from_proxy["client"][0], from_proxy["scheme"]) == ("203.0.113.7", "https")
    assert (socket["client"][0], socket["scheme"]) == ("203.0.113.7", "wss")
    assert (direct["client"][0], direct["scheme"]) == ("198.51.100.9", "http")
