"""The socket protocol as an AsyncAPI 3.0 document: JSON, and a page beside Swagger UI.

Public like ``/api/schema/``: it describes the wire contract, not anyone's data.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path

from config.routing import websocket_urlpatterns
from realtime.asyncapi import asyncapi_document, asyncapi_outline, socket_routes


@cache
def socket_document() -> dict[str, Any]:
    """The document of every socket path, built once per process (the tables are
    class attributes: they cannot change while it runs)."""
    return asyncapi_document(
        routes=socket_routes(websocket_urlpatterns),
        title="Django Realtime sockets",
        version=settings.SPECTACULAR_SETTINGS["VERSION"],
        description="The socket side of the server (docs/protocol.md): one channel "
        "per socket path; every frame is a JSON envelope. The REST side is "
        "/api/schema/.",
    )


def _served(request: HttpRequest) -> dict[str, Any]:
    """The document with this server in ``servers``, as the client reached it."""
    server = {
        "host": request.get_host(),
        "protocol": "wss" if request.is_secure() else "ws",
        "description": "this server",
    }
    return {**socket_document(), "servers": {"this": server}}


def asyncapi_json(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_served(request), json_dumps_params={"ensure_ascii": False})


def asyncapi_page(request: HttpRequest) -> HttpResponse:
    document = _served(request)
    context = {
        "info": document["info"],
        "server": document["servers"]["this"],
        "channels": asyncapi_outline(document),
        "close_codes": document["components"]["x-close-codes"],
        "error_codes": document["components"]["x-error-codes"],
    }
    return render(request, "asyncapi/index.html", context)


urlpatterns = [
    path("asyncapi.json", asyncapi_json, name="asyncapi-json"),
    path("asyncapi/", asyncapi_page, name="asyncapi"),
]
