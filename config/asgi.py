"""ASGI entry point: Django for HTTP (``/healthz`` answered ahead of it), the realtime
consumers for WebSockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # before importing anything that uses models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.routing import OWN_CREDENTIAL_PATHS, websocket_urlpatterns  # noqa: E402
from realtime.auth import RealtimeAuthMiddleware  # noqa: E402
from realtime.gcpolicy import freeze_startup_objects  # noqa: E402
from realtime.health import LivenessProbe  # noqa: E402
from realtime.origin import RealtimeOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        # /healthz on the event loop, never queued behind the database thread.
        "http": LivenessProbe(django_asgi_app),
        "websocket": RealtimeOriginValidator(
            RealtimeAuthMiddleware(
                URLRouter(websocket_urlpatterns),
                own_credential_paths=OWN_CREDENTIAL_PATHS,
            )
        ),
    }
)

# Last: everything imported so far lives as long as the process (realtime/gcpolicy.py).
freeze_startup_objects()
