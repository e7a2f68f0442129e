"""WebSocket routes. Each app adds its consumers here."""

from __future__ import annotations

from django.urls import path

from common.consumers import NotificationsConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
]
