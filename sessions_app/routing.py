"""Socket routes of this feature (listed by config.routing)."""

from __future__ import annotations

from django.urls import path

from sessions_app.consumers import SessionConsumer
from sessions_app.messenger.consumer import MessengerConsumer

websocket_urlpatterns = [
    path("ws/sessions/<str:code>/", SessionConsumer.as_asgi()),
    path("ws/messenger/", MessengerConsumer.as_asgi()),
]
