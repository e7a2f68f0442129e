"""The client's address and scheme behind trusted reverse proxies, for HTTP and WebSockets alike.

Behind a TLS proxy every request comes from the proxy's address, so per-IP limits (allauth's
login limits, ours) would count all clients as one. The proxy says who the client was in
`X-Forwarded-For` and `X-Forwarded-Proto`, but only a request that really came from one of
PARLEY_TRUSTED_PROXIES may say so: anyone else could claim any address.

Daphne's own `--proxy-headers` is not used: it believes the *leftmost* `X-Forwarded-For` entry,
which the client itself writes (a proxy appends), and it believes it from any peer. Here the
header is read from the right, skipping the trusted proxies, and the first other address is the
client; Django then sees it as REMOTE_ADDR, and allauth reads that (its TRUSTED_PROXY_COUNT stays
0 so the header is not counted twice).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return any(ip in network for network in networks if network.version == ip.version)


def _header(scope: dict, name: bytes) -> str:
    values = [value.decode("latin1") for key, value in scope.get("headers", []) if key.lower() == name]
    return ",".join(values)


def client_from_forwarded(*, peer: str, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client's address: the rightmost `X-Forwarded-For` entry that is not a trusted proxy."""
    client = peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _trusted(client, networks):
            break
        try:
            client = str(ipaddress.ip_address(entry.strip("[]").split("%")[0]))
        except ValueError:
            break  # garbage in the chain: believe nothing before it
    return client


class TrustedProxyMiddleware:
    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        networks = settings.PARLEY_TRUSTED_PROXY_NETWORKS
        client = scope.get("client")
        if networks and scope["type"] in ("http", "websocket") and client and _trusted(client[0], networks):
            scope = dict(scope)
            forwarded_for = _header(scope, b"x-forwarded-for")
            if forwarded_for:
                scope["client"] = (client_from_forwarded(peer=client[0], forwarded_for=forwarded_for,
                                                         networks=networks), 0)
            proto = _header(scope, b"x-forwarded-proto").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                secure = proto == "https"
                scope["scheme"] = ("wss" if secure else "ws") if scope["type"] == "websocket" else proto
        return await self.application(scope, receive, send)
