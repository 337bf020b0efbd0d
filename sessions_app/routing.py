"""Socket routes of this feature (listed by config.routing)."""

from __future__ import annotations

from django.urls import path

from sessions_app.consumers import SessionConsumer

websocket_urlpatterns = [
    path("ws/sessions/<str:code>/", SessionConsumer.as_asgi()),
]
