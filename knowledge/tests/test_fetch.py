"""Adding documents by URL can't be used to read the operator's own network (SSRF).

Real sockets on loopback only: 127.0.0.2 plays a public site (the operator "allows" it through
PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS) and 127.0.0.1 an internal service holding a secret.
Addresses that are not loopback are never connected to: an audit hook fails the test if any
code in this process tries.
"""

from __future__ import annotations

import io
import ipaddress
import sys

import pytest

from accounts.tests.factories import user_make
from common.errors import ApplicationError
from common.tests.loopback import LoopbackServer
from knowledge.models import Document
from knowledge.services import document_create_from_url, document_ingest
from knowledge.tests.factories import collection_make

pytestmark = pytest.mark.django_db

SECRET = b"internal-secret: the database password is hunter2"
PAGE = ("<html><body><h1>Lighthouses</h1>" + "<p>A lighthouse keeper trims the lamp every evening. </p>" * 20
        + "</body></html>").encode()

_guard = {"on": False, "attempts": []}


def _no_connections_off_loopback(event: str, args: tuple) -> None:
    if event != "socket.connect" or not _guard["on"]:
        return
    address = args[1]
    if isinstance(address, tuple) and not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
        _guard["attempts"].append(address[0])
        raise RuntimeError(f"test guard: a connection to {address[0]} was attempted")


sys.addaudithook(_no_connections_off_loopback)  # audit hooks can't be removed; the flag turns it off


@pytest.fixture
def no_remote_connections():
    _guard["on"], _guard["attempts"] = True, []
    yield _guard["attempts"]
    _guard["on"] = False


@pytest.fixture
def owner(bundled_models):
    return user_make()


@pytest.fixture
def secret_service():
    with LoopbackServer(lambda path: (200, {"Content-Type": "text/plain"}, SECRET), host="127.0.0.1") as server:
        yield server


def _site(routes: dict[str, tuple[int, dict[str, str], bytes]]):
    return LoopbackServer(lambda path: routes.get(path, (404, {}, b"not here")), host="127.0.0.2")


def _ingest_url(owner, url: str) -> Document:
    document, _ = document_create_from_url(user=owner, collection=collection_make(user=owner), url=url)
    return document_ingest(document_id=document.pk) or Document.objects.get(pk=document.pk)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
    "100.100.100.200", "100.64.0.1",  # shared address space (RFC 6598): cloud metadata lives here too
    "::1", "fd00::1", "fe80::1", "::",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",  # IPv4-mapped and -compatible
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1",  # NAT64 of 127.0.0.1, metadata, 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
])
def test_non_public_addresses_in_every_form_are_refused(address):
    from knowledge.fetch import address_allowed

    assert address_allowed(address) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    from knowledge.fetch import address_allowed

    assert address_allowed(address) is True


def test_an_operator_network_is_allowed_and_nothing_else():
    from knowledge.fetch import address_allowed

    allowed = (ipaddress.ip_network("10.20.0.0/16"),)

    assert address_allowed("10.20.3.4", allowed_networks=allowed)
    assert not address_allowed("10.21.0.1", allowed_networks=allowed)


def test_a_redirect_to_an_internal_address_is_refused_and_the_secret_never_fetched(owner, secret_service, settings):
    settings.PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    target = f"http://127.0.0.1:{secret_service.port}/internal-secret"
    with _site({"/article": (302, {"Location": target}, b"")}) as site:
        document = _ingest_url(owner, f"{site.url}/article")

        assert [r["path"] for r in site.requests] == ["/article"]
    assert document.status == "failed"
    assert "127.0.0.1 is a private or local address" in document.error
    assert secret_service.requests == []
    assert document.chunk_count == 0 and not document.chunks.exists()


def test_redirects_are_followed_to_an_allowed_address(owner, settings):
    settings.PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with _site({"/old": (301, {"Location": "/new"}, b""),
                "/new": (200, {"Content-Type": "text/html"}, PAGE)}) as site:
        document = _ingest_url(owner, f"{site.url}/old")

    assert document.status == "ready", document.error
    assert "lighthouse keeper" in " ".join(document.chunks.values_list("text", flat=True))


def test_more_than_five_redirects_are_refused(owner, settings):
    settings.PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    routes = {f"/{n}": (302, {"Location": f"/{n + 1}"}, b"") for n in range(10)}
    with _site(routes) as site:
        document = _ingest_url(owner, f"{site.url}/0")

        assert len(site.requests) == 6  # the first request and five redirects, no more
    assert document.status == "failed" and "more than 5 times" in document.error


def test_a_name_that_resolves_to_loopback_is_refused(owner, secret_service):
    document = _ingest_url(owner, f"http://localhost:{secret_service.port}/internal-secret")

    assert document.status == "failed" and "private or local address" in document.error
    assert secret_service.requests == []


def test_a_mapped_ipv6_loopback_is_refused(owner, secret_service):
    from knowledge.fetch import FetchError, url_fetch

    with pytest.raises(FetchError, match="private or local"):
        url_fetch(url=f"http://[::ffff:127.0.0.1]:{secret_service.port}/", out=io.BytesIO(), max_bytes=1000,
                  timeout=5)

    assert secret_service.requests == []


@pytest.mark.parametrize("url", [
    "http://100.100.100.200/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
])
def test_the_worker_never_connects_to_metadata_addresses(url, no_remote_connections):
    from knowledge.fetch import FetchError, url_fetch

    with pytest.raises(FetchError, match="private or local"):
        url_fetch(url=url, out=io.BytesIO(), max_bytes=1000, timeout=5)

    assert no_remote_connections == []


def test_a_metadata_address_is_refused_when_the_document_is_added(owner, no_remote_connections):
    with pytest.raises(ApplicationError, match="private or local") as raised:
        document_create_from_url(user=owner, collection=collection_make(user=owner),
                                 url="http://100.100.100.200/latest/meta-data/")

    assert raised.value.status == 400
    assert not Document.objects.exists()


def test_an_oversized_body_is_cut_off(settings):
    from knowledge.fetch import FetchError, url_fetch

    settings.PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    with _site({"/big": (200, {"Content-Type": "text/plain"}, b"x" * 5000)}) as site:
        with pytest.raises(FetchError, match="larger than"):
            url_fetch(url=f"{site.url}/big", out=io.BytesIO(), max_bytes=1000, timeout=5,
                      allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
