"""Every socket path of the project, beside ``config/urls.py`` (the composition root).

The toolkit (``realtime``) imports no endpoint: each endpoint lists its routes, and
this module puts them together. Paths that authenticate themselves are declared here
too, so the one place that lists a path also says how its caller is identified.
"""

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
    re_path(r"", NotFoundConsumer.as_asgi()),  # accepted, then closed 4004
]

# Socket paths (regexes on the path) whose consumer checks a credential of its own,
# a camera's publish token: the socket entry neither validates nor logs it there
# and hands it over as ``scope["credential"]``.
OWN_CREDENTIAL_PATHS = [
    r"^/ws/streams/[^/]+/publish/$",
]
