"""Socket routes of this feature (included by realtime.routing)."""

from __future__ import annotations

from django.urls import path

from camera.consumers import IngestConsumer, ViewerConsumer
from realtime.auth import route_checks_own_credential

# The ingest socket takes the stream's publish token, not a user credential.
route_checks_own_credential(r"^/ws/streams/[^/]+/publish/$")

websocket_urlpatterns = [
    path("ws/streams/<str:stream_id>/publish/", IngestConsumer.as_asgi()),
    path("ws/streams/<str:stream_id>/", ViewerConsumer.as_asgi()),
]
