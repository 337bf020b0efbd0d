"""ASGI entry point for daphne; Django is set up on first use, not at import."""

import os

_app = None


def _build():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.naive_channels.settings")
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application

    http = get_asgi_application()
    from .routing import websocket_urlpatterns

    return ProtocolTypeRouter(
        {"http": http, "websocket": URLRouter(websocket_urlpatterns)}
    )


async def application(scope, receive, send):
    """Build the Channels router once, then delegate to it."""
    global _app
    if _app is None:
        _app = _build()
    await _app(scope, receive, send)
