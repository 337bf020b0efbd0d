"""Every socket path of the project; unknown paths are accepted and closed 4004."""

from __future__ import annotations

from django.urls import path, re_path

from camera.routing import websocket_urlpatterns as camera_routes
from realtime.consumers import NotFoundConsumer
from realtime.copilot.routing import websocket_urlpatterns as copilot_routes
from realtime.echo import EchoConsumer
from sessions_app.routing import websocket_urlpatterns as session_routes

websocket_urlpatterns = [
    path("ws/echo/", EchoConsumer.as_asgi()),
    *copilot_routes,
    *session_routes,
    *camera_routes,
    re_path(r"", NotFoundConsumer.as_asgi()),
]
