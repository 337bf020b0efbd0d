"""Socket routes of this feature (included by realtime.routing)."""

from __future__ import annotations

from django.urls import path

from realtime.copilot.consumer import CopilotConsumer

websocket_urlpatterns: list = [
    path("ws/copilot/", CopilotConsumer.as_asgi()),
]
