"""Liveness on the event loop: ``/healthz`` answered before Django sees the request.

A Django view, even a trivial one, is a request through Django's middleware and a
thread of its own (asgiref runs sync views in a per-request thread), which must win
the GIL back and forth from an event loop that is busy. During a reconnect storm
(the fault suite's 1,000 clients dropped at once onto two processes on 2 cores) the
view answered in 3.4 s at the peak; this wrapper in under 1 s. It waits only for
the event loop itself, which is what liveness means: the process takes work.
Readiness (the process's dependencies) stays ``/readyz``, a Django view.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'


class LivenessProbe:
    """ASGI middleware: ``GET``/``HEAD`` on ``path`` get ``200 {"status":"ok"}``."""

    def __init__(self, app: Any, path: str = "/healthz") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        method = scope.get("method", "GET")
        allowed = method in ("GET", "HEAD")
        body = (BODY if allowed else b'{"status":"method not allowed"}') + b"\n"
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if not allowed:
            headers.append((b"allow", b"GET, HEAD"))
        await send(
            {
                "type": "http.response.start",
                "status": 200 if allowed else 405,
                "headers": headers,
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if method == "HEAD" else body}
        )
