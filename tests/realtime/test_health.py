"""``/healthz`` answered on the event loop, ahead of Django (the fault suite's
reconnect storm holds it to its 1 s bound under load)."""

from __future__ import annotations

import json

from channels.testing import HttpCommunicator

from config.asgi import application
from realtime.health import LivenessProbe


async def get(path: str, method: str = "GET", app=application) -> dict:
    return await HttpCommunicator(app, method, path).get_response(timeout=2)


async def test_healthz_answers_ok_without_django():
    reply = await get("/healthz")
    assert reply["status"] == 200
    assert json.loads(reply["body"]) == {"status": "ok"}
    headers = dict(reply["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"cache-control"] == b"no-store"
    assert int(headers[b"content-length"]) == len(reply["body"])


async def test_head_has_no_body_and_other_methods_are_refused():
    head = await get("/healthz", "HEAD")
    assert head["status"] == 200 and head["body"] == b""
    post = await get("/healthz", "POST")
    assert post["status"] == 405
    assert dict(post["headers"])[b"allow"] == b"GET, HEAD"


async def test_other_paths_and_websockets_reach_the_app():
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], scope.get("path")))
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    probe = LivenessProbe(app)
    assert (await get("/healthz/", app=probe))["status"] == 204
    assert (await get("/readyz", app=probe))["status"] == 204
    await probe({"type": "websocket", "path": "/healthz"}, None, None)
    assert seen == [
        ("http", "/healthz/"),
        ("http", "/readyz"),
        ("websocket", "/healthz"),
    ]
