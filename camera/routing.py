"""Socket routes of this feature (listed by config.routing)."""

from __future__ import annotations

from django.urls import path

from camera.consumers import IngestConsumer, ViewerConsumer

websocket_urlpatterns = [
    # Takes the stream's publish token, not a user credential: config.routing says so.
    path("ws/streams/<str:stream_id>/publish/", IngestConsumer.as_asgi()),
    path("ws/streams/<str:stream_id>/", ViewerConsumer.as_asgi()),
]
