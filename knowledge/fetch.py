"""Fetch a URL for ingest without letting users reach the operator's own network (SSRF).

Checking a host name and then handing the URL to `urlopen` is not enough: `urlopen` resolves the
name again (a DNS answer can change between the two lookups) and follows redirects to any
address. So every hop here is resolved once, every address it resolves to is checked, and the
connection goes to that checked address (TLS still verifies the certificate against the name).
Redirects are followed by hand, at most MAX_REDIRECTS of them, each checked like the first.

Only globally routable addresses are allowed (`ipaddress.is_global`), after unwrapping IPv4
addresses carried inside IPv6 ones (mapped, NAT64, 6to4, Teredo), so `::ffff:127.0.0.1` or
`64:ff9b::a9fe:a9fe` can't stand in for a loopback or metadata address. The operator opts in to
private addresses with PARLEY_KNOWLEDGE_FETCH_PRIVATE_URLS (all of them) or
PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS (named networks only).
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_BLOCK = 64 * 1024
# 64:ff9b::/96 is NAT64's well-known prefix and 64:ff9b:1::/48 its local-use one: both carry an
# IPv4 address in their last 32 bits, which is what a NAT64 gateway would connect to.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class FetchError(Exception):
    """Why the URL could not be fetched, in words the uploader can act on."""


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    mime: str
    size: int
    sha256: str


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    # IPv4-compatible addresses (::a.b.c.d, deprecated but still parsed by some stacks).
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def address_allowed(address: str | Address, *, allowed_networks: tuple[Network, ...] = ()) -> bool:
    """True if Parley may connect to this address for a user: public, or in an operator's network."""
    ip = ipaddress.ip_address(address.split("%")[0]) if isinstance(address, str) else address
    if any(ip in network for network in allowed_networks if network.version == ip.version):
        return True
    inner = _embedded_ipv4(ip)
    if inner is not None and not address_allowed(inner, allowed_networks=allowed_networks):
        return False
    return ip.is_global and not ip.is_multicast


def networks_parse(values: list[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def host_resolve_checked(host: str, port: int, *, allow_private: bool,
                         allowed_networks: tuple[Network, ...]) -> list[str]:
    """Every address `host` resolves to, each allowed (FetchError otherwise). Connect to one of these with
    `connection_pinned`, never by name again. Public: chat's webhook tool posts through the same checks."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise FetchError(f"Could not resolve {host}; check the address.")
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise FetchError(f"Could not resolve {host}; check the address.")
    if not allow_private:
        # All of them, not just the one we would use: a name that also resolves to a private
        # address is refused outright rather than raced.
        for address in addresses:
            if not address_allowed(address, allowed_networks=allowed_networks):
                raise FetchError(f"{host} is a private or local address; Parley only fetches public pages.")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked beforehand, never to whatever the name resolves to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the name in the URL, as a browser would.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def connection_pinned(scheme: str, host: str, port: int, addresses: list[str], timeout: float
                      ) -> http.client.HTTPConnection:
    """A connection to the first of the checked `addresses` that answers (TLS verified against `host`)."""
    kind = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    error: OSError | None = None
    for address in addresses:
        connection = kind(host, port, address=address, timeout=timeout)
        try:
            connection.connect()
            return connection
        except OSError as exc:
            connection.close()
            error = exc
    raise FetchError(f"Could not connect to {host}: {getattr(error, 'strerror', None) or error}.")


def url_fetch(*, url: str, out: BinaryIO, max_bytes: int, timeout: float, allow_private: bool = False,
              allowed_networks: tuple[Network, ...] = (), user_agent: str = "Parley knowledge ingest") -> Fetched:
    """Download `url` into `out` in blocks; refuses private addresses on every hop, over-size
    bodies, more than MAX_REDIRECTS redirects, and anything slower than `timeout` in all."""
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError(f"Fetching {url} took longer than {timeout:.0f} s.")
        return left

    current = url
    for hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{current} is not an http:// or https:// address.")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"{current} has an invalid port.")
        host = parts.hostname
        addresses = host_resolve_checked(host, port, allow_private=allow_private, allowed_networks=allowed_networks)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = connection_pinned(parts.scheme, host, port, addresses, remaining())
        sock = connection.sock  # http.client drops its own reference once the response will close
        try:
            connection.request("GET", path, headers={"User-Agent": user_agent, "Accept": "*/*"})
            response = connection.getresponse()
            if response.status in REDIRECT_STATUSES:
                location = response.headers.get("Location", "")
                if not location:
                    raise FetchError(f"{current} redirected without saying where to.")
                if hop == MAX_REDIRECTS:
                    raise FetchError(f"{url} redirected more than {MAX_REDIRECTS} times.")
                current = urljoin(current, location)
                continue
            if response.status >= 400:
                raise FetchError(f"Fetching {current} failed: the server answered {response.status} "
                                 f"{response.reason}.")
            mime = response.headers.get_content_type() or ""
            declared = response.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{current} is larger than the {max_bytes / 1024 / 1024:,.0f} MB limit.")
            digest, size = hashlib.sha256(), 0
            while True:
                # One receive per block, each bounded by what is left of the deadline, so a server
                # trickling bytes can't stretch the fetch (the socket is gone once the body ended).
                left = remaining()
                if sock.fileno() != -1:
                    sock.settimeout(left)
                block = response.read1(_BLOCK)
                if not block:
                    break
                size += len(block)
                if size > max_bytes:
                    raise FetchError(f"{current} is larger than the {max_bytes / 1024 / 1024:,.0f} MB limit.")
                digest.update(block)
                out.write(block)
            return Fetched(url=current, mime=mime, size=size, sha256=digest.hexdigest())
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError):
                raise FetchError(f"Fetching {url} took longer than {timeout:.0f} s.")
            raise FetchError(f"Fetching {current} failed: {exc.__class__.__name__}: {exc}.")
        finally:
            connection.close()
    raise FetchError(f"{url} redirected more than {MAX_REDIRECTS} times.")  # not reached
