"""Socket routes of this feature (listed by config.routing)."""

from __future__ import annotations

from django.urls import path

from realtime.copilot.consumer import CopilotConsumer

websocket_urlpatterns: list = [
    path("ws/copilot/", CopilotConsumer.as_asgi()),
]
