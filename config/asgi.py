"""ASGI entry point: Django for HTTP (``/healthz`` answered ahead of it), the realtime
consumers for WebSockets, each socket let in by ``realtime.entry.Entry`` (origin,
route and credential in one frame)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # before importing anything that uses models

from config.routing import OWN_CREDENTIAL_PATHS, websocket_urlpatterns  # noqa: E402
from realtime.entry import Entry  # noqa: E402
from realtime.gcpolicy import freeze_startup_objects  # noqa: E402
from realtime.health import LivenessProbe  # noqa: E402

application = Entry(
    # /healthz on the event loop, never queued behind the database thread.
    http=LivenessProbe(django_asgi_app),
    websocket_routes=websocket_urlpatterns,
    own_credential_paths=OWN_CREDENTIAL_PATHS,
)

# Last: everything imported so far lives as long as the process (realtime/gcpolicy.py).
freeze_startup_objects()
