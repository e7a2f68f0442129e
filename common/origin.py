"""WebSocket origin check: scheme, host and port must all match, as browsers define an origin.

Browsers send cookies on cross-site WebSocket handshakes, so this check is what stops another
site from opening a socket as the signed-in user. Channels' AllowedHostsOriginValidator compares
the host name only, so `http://localhost:9999` (any other program on the machine) or an
`http://` page of an `https://` site passed. Allowed: the socket's own origin (its scheme and
its Host header, the host being in ALLOWED_HOSTS), or an origin in CSRF_TRUSTED_ORIGINS, which
is the list Django's CSRF check trusts for forms too.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int] | None:
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host.lower().strip("[]"), port or _DEFAULT_PORTS[scheme]


def origin_parse(value: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(value)
        return _origin(parts.scheme.lower(), parts.hostname or "", parts.port)
    except ValueError:
        return None


def _trusted_match(origin: tuple[str, str, int], pattern: str) -> bool:
    wanted = origin_parse(pattern.replace("://*.", "://wildcard."))
    if wanted is None or wanted[0] != origin[0] or wanted[2] != origin[2]:
        return False
    if "://*." in pattern:
        suffix = wanted[1].removeprefix("wildcard")
        return origin[1].endswith(suffix)
    return wanted[1] == origin[1]


def _secure(scope: dict, headers: dict[bytes, str]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    # The same rule as Django's request.is_secure(): production trusts its TLS proxy's header.
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, value = proxy_header
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        return headers.get(header, "").split(",")[0].strip() == value
    return False


def origin_allowed(scope: dict) -> bool:
    headers = {key.lower(): value.decode("latin1") for key, value in scope.get("headers", [])}
    origin = origin_parse(headers.get(b"origin", ""))
    if origin is None:
        return False
    if any(_trusted_match(origin, pattern) for pattern in settings.CSRF_TRUSTED_ORIGINS):
        return True
    host, port = split_domain_port(headers.get(b"host", ""))
    if not host or not validate_host(host, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if _secure(scope, headers) else "http"
    try:
        own = _origin(scheme, host, int(port) if port else None)
    except ValueError:
        return False
    return own == origin


class OriginValidator:
    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
