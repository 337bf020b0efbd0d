"""The project's ASGI application: HTTP to Django, every socket in through one frame.

Channels composes a socket's way in from layers: ``ProtocolTypeRouter``, the origin
check, the credential (``RealtimeAuthMiddleware``), ``URLRouter`` and ``as_asgi``'s
wrapper. Each is a coroutine that awaits the next, so each keeps a frame for as long
as the socket lives, and two of them keep a copy of the scope: on an idle socket that
was ~1.6 KB of the process's memory on uvicorn and ~2.2 KB on daphne
(docs/performance.md), and each layer is a call and a coroutine more per connect.
``Entry`` does the same checks in one frame with one copy of the scope, and then
awaits the consumer itself (the route before the credential: a path with no route
costs no credential check):

1. the origin (``realtime.origin``): a browser page of another site is refused with a
   bare 403, as Channels' validator does;
2. the route: the first of the patterns that matches the path (Django's ``path`` and
   ``re_path``, as ``URLRouter`` reads them), ``url_route`` as ``URLRouter`` sets it;
3. the credential (``realtime.auth.socket_identity``): ``scope["auth"]`` and
   ``scope["user"]``, or ``scope["credential"]`` on a path that checks its own.

The routes are one flat list (as ``config.routing`` has them): an ``include()`` or a
nested ``URLRouter`` is refused when the entry is made. The layers themselves stay in
the toolkit for an endpoint tested on its own (docs/toolkit.md, "Tests").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.security.websocket import WebsocketDenier
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLResolver

from realtime.auth import socket_identity
from realtime.origin import origin_check

App = Callable[[dict, Callable, Callable], Awaitable[Any]]


class Entry:
    """``http`` scopes to ``http``; ``websocket`` scopes through the origin, the route
    and the credential to the route's consumer."""

    def __init__(
        self,
        *,
        http: App,
        websocket_routes: Iterable[Any],
        own_credential_paths: Iterable[str] = (),
    ) -> None:
        self.http = http
        self.routes = list(websocket_routes)
        for route in self.routes:
            if isinstance(route, URLResolver) or getattr(
                route.callback, "_path_routing", False
            ):  # Channels' mark of a router (URLRouter sets it)
                raise ImproperlyConfigured(
                    f"Entry takes a flat list of socket routes, not {route!r}"
                )
        self.own_credential_paths = [re.compile(p) for p in own_credential_paths]
        self.origin_allowed = origin_check()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> Any:
        kind = scope["type"]
        if kind != "websocket":
            if kind != "http":  # lifespan: the server carries on without it
                raise ValueError(f"No application configured for scope type {kind!r}")
            return await self.http(scope, receive, send)
        if not self.origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        app, route = self.route(scope)
        identity = await socket_identity(scope, self.own_credential_paths)
        scope = {**scope, **route, **identity}
        consumer_class = getattr(app, "consumer_class", None)
        if consumer_class is None or getattr(app, "__wrapped__", None) is not (
            consumer_class
        ):  # an ASGI application of its own, or as_asgi()'s app wrapped in another
            return await app(scope, receive, send)
        # as_asgi()'s own app: what it would do, without its frame
        return await consumer_class(**app.consumer_initkwargs)(scope, receive, send)

    def route(self, scope: dict) -> tuple[App, dict]:
        """The first route matching the socket's path, and what ``URLRouter`` adds
        to the scope for it (``path_remaining``, ``url_route``)."""
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path:
            if not path.startswith(root_path):
                raise ValueError(f"No route found for path {path!r}.")
            path = path[len(root_path) :]
        path = path.lstrip("/")
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                remaining, args, kwargs = match
                kwargs.update(route.default_args)
                url_route = {"args": args, "kwargs": kwargs}
                return route.callback, {
                    "path_remaining": remaining,
                    "url_route": url_route,
                }
        raise ValueError(f"No route found for path {path!r}.")
