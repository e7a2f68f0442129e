"""ASGI entry point: HTTP goes to Django, WebSockets through origin and session checks. Both see
the client's real address and scheme when a trusted proxy forwarded them (common/proxy.py)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
# The web process pools its database connections (config/settings/base.py says why): set while the
# settings are read, then dropped, so processes this one starts don't inherit it. PARLEY_DB_POOL=false
# turns it off.
_pool_default = "PARLEY_DB_POOL" not in os.environ
os.environ.setdefault("PARLEY_DB_POOL", "true")
django_asgi_app = get_asgi_application()
if _pool_default:
    del os.environ["PARLEY_DB_POOL"]

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from common.origin import OriginValidator  # noqa: E402
from common.proxy import TrustedProxyMiddleware  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

application = TrustedProxyMiddleware(ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Browsers send cookies cross-site on WebSocket handshakes; refusing foreign origins
        # (scheme, host and port) is what stops another site from opening a socket as the user.
        "websocket": OriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
))
