"""WebSocket routes. Each app adds its consumers here."""

from __future__ import annotations

from django.urls import path

from chat.consumers import ChatConsumer
from chat.voice import VoiceConsumer
from common.consumers import NotificationsConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationsConsumer.as_asgi()),
    path("ws/chat/<int:conversation_id>/", ChatConsumer.as_asgi()),
    path("ws/voice/<int:conversation_id>/", VoiceConsumer.as_asgi()),
]
